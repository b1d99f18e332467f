package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
)

// grpcServer serves the Gateway API for one instance.
type grpcServer struct {
	pb.UnimplementedGatewayServer
	g    *SDWAN
	srv  *grpc.Server
	lis  net.Listener
	done chan struct{}
}

// startGRPC listens on addr and serves until stop.
func startGRPC(addr string, g *SDWAN) (*grpcServer, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gRPC server: %w", err)
	}
	s := &grpcServer{g: g, srv: grpc.NewServer(), lis: lis, done: make(chan struct{})}
	pb.RegisterGatewayServer(s.srv, s)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(lis)
	}()
	return s, nil
}

func (s *grpcServer) stop() {
	s.srv.Stop()
	<-s.done
}

// Apply decodes the request's rules and applies them as one change.
func (s *grpcServer) Apply(_ context.Context, req *pb.Request) (*pb.Reply, error) {
	ops := map[pb.Operand]string{pb.Operand_CREATE: "create", pb.Operand_UPDATE: "update", pb.Operand_DELETE: "delete"}
	op := ops[req.GetOperand()]
	if op == "" {
		return nil, status.Errorf(codes.InvalidArgument, "operand %d is not CREATE, UPDATE or DELETE", req.GetOperand())
	}
	if len(req.GetRules()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "rules: the request has none")
	}
	ch := ruleChange{op: op}
	var lbrs []LBRConfig
	for i, r := range req.GetRules() {
		switch r.GetType() {
		case pb.RuleType_PDR:
			rule, err := decodePDR(r, &s.g.cfg, op == "delete")
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "rules[%d] (PDR): %v", i, err)
			}
			if op == "delete" {
				ch.delete = append(ch.delete, rule.ID)
			} else {
				ch.rules = append(ch.rules, rule)
			}
		case pb.RuleType_LBR:
			l, err := decodeLBR(r, &s.g.cfg)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "rules[%d] (LBR): %v", i, err)
			}
			lbrs = append(lbrs, l)
		default:
			return nil, status.Errorf(codes.InvalidArgument, "rules[%d]: type %d is not PDR or LBR", i, r.GetType())
		}
	}
	if len(lbrs) > 0 && (len(ch.rules) > 0 || len(ch.delete) > 0) {
		return nil, status.Error(codes.InvalidArgument, "rules: a request changes PDRs or LBRs, not both")
	}
	var err error
	if len(lbrs) > 0 {
		err = s.g.applyLBRs(op, lbrs)
	} else {
		err = s.g.applyRules(ch)
	}
	if err != nil {
		return nil, grpcError(err)
	}
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return &pb.Reply{Pdrs: uint32(len(s.g.rules)), Lbrs: uint32(len(s.g.lbrs))}, nil
}

// List returns the PDRs in precedence order, then the LBRs by class.
func (s *grpcServer) List(context.Context, *pb.ListRequest) (*pb.RuleList, error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	ps := make([]*pdr, 0, len(g.rules))
	for _, p := range g.rules {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Precedence != ps[j].Precedence {
			return ps[i].Precedence < ps[j].Precedence
		}
		return ps[i].ID < ps[j].ID
	})
	out := &pb.RuleList{}
	for _, p := range ps {
		out.Rules = append(out.Rules, encodePDR(p, &g.cfg))
	}
	for cls := 0; cls <= sdClasses; cls++ {
		if l := g.lbrs[cls]; l != nil {
			out.Rules = append(out.Rules, encodeLBR(l, &g.cfg))
		}
	}
	return out, nil
}

// grpcError maps a change's error to its status code.
func grpcError(err error) error {
	switch {
	case errors.Is(err, errInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errExists):
		return status.Error(codes.AlreadyExists, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
