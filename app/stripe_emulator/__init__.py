"""A local Stripe emulator that the official SDK talks to over HTTP (see docs/stripe-emulator.md).

It stands in for Stripe itself, so it never imports `stripe`.
"""
