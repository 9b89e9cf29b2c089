"""numba options of the limiter's compiled functions.

``_nrt=False`` compiles them without numba's reference counting: the limiter allocates nothing,
and counting the references of the array views it hands from function to function (an atomic
increment and decrement each, on arrays shared by every account) took about an eighth of the
simulator's limiter pass. Code that allocates or runs a parallel loop (numba's scheduler
allocates) keeps the default.

The stages of every decision (``JIT_INLINE``) are inlined by LLVM into the decision, which
saves passing records and arrays (about ten words each) from call to call: a few percent of
the pass. Unlike numba's own ``inline="always"``, which types the inlined body again in every
caller (and compiled the limited env's steps in 160 s instead of 47 s on a cold cache), LLVM
inlines the compiled functions, at little cost in compile time. Rarely taken paths (the
bisection of the exposure scale, flattening, transitions) stay calls. The ``forceinline``
option is set on every function: numba lets a callee inherit it otherwise.
"""

from typing import Any

JIT: dict[str, Any] = {"cache": True, "error_model": "numpy", "_nrt": False, "forceinline": False}
"""``@nb.njit(**JIT)``: cached, numpy's error model, no reference counting."""

JIT_INLINE: dict[str, Any] = {**JIT, "forceinline": True}
"""``@nb.njit(**JIT_INLINE)``: the same, inlined into its callers by LLVM (``alwaysinline``)."""
