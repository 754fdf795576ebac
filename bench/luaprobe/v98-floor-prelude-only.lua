-- prelude: _prelude-v10.lua
return {1, '0123456789abcdef'}
