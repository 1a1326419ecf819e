# The usage API's client fixtures serve the guest API's tests too.
from tests.integration.metering.conftest import api, api_key

__all__ = ["api", "api_key"]
