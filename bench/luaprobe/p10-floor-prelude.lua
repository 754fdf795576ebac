-- prelude: lib.lua
return {1, '0123456789abcdef'}
