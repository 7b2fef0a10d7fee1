"""``python -m kariz_leads`` and ``kariz-leads``: the service, configured from the environment."""

from kariz_leads.bootstrap import build


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
