"""`python -m app.stripe_emulator`: serve the emulator with the portal's settings."""

from app.config import Settings
from app.stripe_emulator.server import run

if __name__ == "__main__":
    run(Settings.from_env())
