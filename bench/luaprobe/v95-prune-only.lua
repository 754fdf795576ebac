-- prelude: _prelude-v10.lua
pruneTombs() return {1, '0123456789abcdef'}
