"""mmengine-side additions (hooks); see :mod:`morphmlp_mm.engine.hooks`."""
