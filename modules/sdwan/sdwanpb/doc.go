// Package sdwanpb is the sdwan module's gRPC control API: the messages and
// the Gateway service generated from sdwan.proto (`make generate` runs
// protoc with the protoc-gen-go and protoc-gen-go-grpc tools pinned in
// go.mod). The sdwan control plane serves it; netmanagerctl sdwan calls it.
package sdwanpb
