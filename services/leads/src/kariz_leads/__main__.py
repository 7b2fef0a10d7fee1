from kariz_leads.main import main

main()
