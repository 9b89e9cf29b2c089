"""Does PPO (plain or residual) beat the best baseline on PerpMM?"""
