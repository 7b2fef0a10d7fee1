from kariz_notifications.main import main

main()
