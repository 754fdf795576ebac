-- The price of the call itself: the engine's KEYS and ARGV, no prelude.
return {1, '0123456789abcdef'}
