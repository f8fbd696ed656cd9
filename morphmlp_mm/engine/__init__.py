"""mmengine-side additions: hooks (:mod:`morphmlp_mm.engine.hooks`) and the
class-curriculum sampler (:mod:`morphmlp_mm.engine.samplers`)."""
