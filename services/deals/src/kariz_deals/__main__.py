from kariz_deals.main import main

main()
