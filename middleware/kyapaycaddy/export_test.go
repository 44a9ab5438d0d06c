package kyapaycaddy

// StartRedis starts a redis-server for the tests of package
// kyapaycaddy_test (see startRedis).
var StartRedis = startRedis
