module syncpool/bench/go_sync_pool

go 1.19
