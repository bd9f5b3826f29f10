module platform-conformance/images/resolve-go

go 1.24
