"""User scripts: what they may do (``api``), and the Lua and Python engines that run them."""
