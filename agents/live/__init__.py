"""The live side: venues (``agents.live.venues``) that the live runner trades through.

Importing ``agents.live`` pulls in no training stack (torch, stable-baselines3, Ray, Hydra,
pandas, matplotlib).
"""
