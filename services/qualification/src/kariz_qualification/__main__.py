"""``python -m kariz_qualification`` and ``kariz-qualification``: the service, configured from the
environment."""

from kariz_qualification.bootstrap import build


def main() -> None:
    build().run()


if __name__ == "__main__":
    main()
