"""The built-in characters, their passages and the demo story: data, installed as the package
``engine.assets`` (see ``pyproject.toml``); nothing here is code."""
