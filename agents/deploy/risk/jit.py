"""numba options of the limiter's compiled functions.

``_nrt=False`` compiles them without numba's reference counting: the limiter allocates nothing,
and counting the references of the array views it hands from function to function (an atomic
increment and decrement each, on arrays shared by every account) took about an eighth of the
simulator's limiter pass. Code that allocates or runs a parallel loop (numba's scheduler
allocates) keeps the default.
"""

from typing import Any

JIT: dict[str, Any] = {"cache": True, "error_model": "numpy", "_nrt": False}
"""``@nb.njit(**JIT)``: cached, numpy's error model, no reference counting."""
