"""The durafn benchmark: the same workloads on durafn and its peers, one table. See README.md."""
