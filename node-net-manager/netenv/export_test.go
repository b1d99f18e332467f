package netenv

// SwapAddrs is swapAddrs for the tests of package netenv_test.
var SwapAddrs = swapAddrs
