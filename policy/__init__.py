"""CrossGuard policy pack of platform-infra (rules.py holds the rules)."""
