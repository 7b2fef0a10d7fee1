"""``python -m kariz_deals`` and ``kariz-deals``: the service, configured from the environment."""

from kariz_deals.bootstrap import build


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
