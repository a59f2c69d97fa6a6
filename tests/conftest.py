"""Fixtures shared by every test folder; the backend servers live in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.nats"]
