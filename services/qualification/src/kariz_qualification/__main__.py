from kariz_qualification.main import main

main()
