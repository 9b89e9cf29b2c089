"""Every baseline on every scenario: the league a desk reads before trusting a learned policy."""
