"""RLlib (Ray) training on PerpMM-v0: new API stack (RLModule, Learner, EnvRunner) on the native
vector env, Ray Tune sweeps, and :class:`~agents.rllib.policy.RLlibPolicy`, the trained module
behind the common :class:`~agents.policy.Policy` interface.

Importing this package does not import Ray; the submodules that need it do.
"""
