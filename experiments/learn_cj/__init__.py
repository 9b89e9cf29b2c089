"""Does PPO learn the Cartea-Jaimungal optimum?"""
