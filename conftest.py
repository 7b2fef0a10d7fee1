# The shared fixtures (backends, settings_for) for every test in the repository.
pytest_plugins = ["kariz_devkit.testing.plugin"]
