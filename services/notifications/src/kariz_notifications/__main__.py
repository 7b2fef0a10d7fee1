"""``python -m kariz_notifications`` and ``kariz-notifications``: the service, configured from the
environment."""

from kariz_notifications.bootstrap import build


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
