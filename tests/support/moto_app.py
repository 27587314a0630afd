"""The app that the in-process moto fixtures register (tests/conftest.py `registry`)."""

SDKAPPID = 1400000001
SECRET_ID = "AKIDTESTS"
SECRET_KEY = "test-secret-key"
USERSIG_KEY = "test-usersig-key"
