package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/proxy"
	"github.com/oakestra/netmanager/test/metricsdoc"
)

type fakeDeployer struct{ err error }

func (f fakeDeployer) Deploy(context.Context, deploy.Request) (deploy.Record, error) {
	return deploy.Record{}, f.err
}
func (f fakeDeployer) Undeploy(context.Context, deploy.Kind, string, int) error { return f.err }
func (f fakeDeployer) List() []deploy.Record                                    { return nil }

func scrape(t *testing.T, src metricsSources) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	rec := httptest.NewRecorder()
	metricsHandler(src).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	body, _ := io.ReadAll(rec.Body)
	fams := metricsdoc.Parse(t, "the scrape", body)
	return string(body), fams
}

func TestMetricsScrape(t *testing.T) {
	api := &countingDeployer{Deployer: fakeDeployer{}}
	_, _ = api.Deploy(context.Background(), deploy.Request{})
	api.Deployer = fakeDeployer{err: fmt.Errorf("%w: pid", errdefs.ErrInvalid)}
	_, _ = api.Deploy(context.Background(), deploy.Request{})
	src := metricsSources{
		version: "v-test",
		api:     api,
		services: func() []deploy.Record {
			return []deploy.Record{{Kind: deploy.KindContainer}, {Kind: deploy.KindContainer}}
		},
		proxy: func() proxy.Stats {
			return proxy.Stats{Translated: 9, Sessions: 2, Dropped: map[string]uint64{"noRoute": 4}, PeerRTTms: map[string]float64{"192.168.77.2:50103": 2.5}}
		},
		ebpf: func() ebpfmanager.Metrics {
			return ebpfmanager.Metrics{
				Operations: []ebpfmanager.OperationCount{{Operation: "load", Count: 2}, {Operation: "load", Error: "unprocessable", Count: 1}},
				Instances: []ebpfmanager.InstanceMetrics{
					{ID: "1", Module: "packetcounter", State: ebpfmanager.StateRunning, Attachments: 3,
						Programs: []ebpfmanager.ProgramMetrics{{Hook: module.HookEgress, RunStats: ebpfmanager.RunStats{Runs: 10, RunTime: 2 * time.Microsecond}}},
						Samples:  []module.Metric{{Name: "packets_total", Labels: map[string]string{"interface": "oak1", "direction": "ingress"}, Value: 5}}},
					{ID: "2", Module: "firewall", State: ebpfmanager.StateFailed, Error: errors.New("gone")},
				},
			}
		},
	}
	body, _ := scrape(t, src)
	for _, want := range []string{
		`netmanager_build_info{version="v-test"} 1`,
		`netmanager_services{kind="container"} 2`,
		`netmanager_services{kind="unikernel"} 0`,
		`netmanager_api_operations_total{error="",operation="deploy"} 1`,
		`netmanager_api_operations_total{error="invalid",operation="deploy"} 1`,
		`netmanager_proxy_translated_packets_total 9`,
		`netmanager_proxy_sessions 2`,
		`netmanager_proxy_dropped_packets_total{reason="noRoute"} 4`,
		`netmanager_proxy_peer_rtt_seconds{peer="192.168.77.2:50103"} 0.0025`,
		`netmanager_ebpf_operations_total{error="unprocessable",operation="load"} 1`,
		`netmanager_ebpf_instance_up{instance="1",module="packetcounter"} 1`,
		`netmanager_ebpf_instance_up{instance="2",module="firewall"} 0`,
		`netmanager_ebpf_attachments{instance="1",module="packetcounter"} 3`,
		`netmanager_ebpf_scrape_error{instance="2",module="firewall"} 1`,
		`netmanager_ebpf_program_runs_total{hook="egress",instance="1",module="packetcounter"} 10`,
		`netmanager_ebpf_program_run_seconds_total{hook="egress",instance="1",module="packetcounter"} 2e-06`,
		`netmanager_module_packetcounter_packets_total{direction="ingress",instance="1",interface="oak1",module="packetcounter"} 5`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

// Parts that are off export nothing of theirs.
func TestMetricsScrapeWithoutProxyOrEBPF(t *testing.T) {
	body, _ := scrape(t, metricsSources{version: "v", api: &countingDeployer{}, services: func() []deploy.Record { return nil }})
	for _, absent := range []string{"netmanager_proxy_", "netmanager_ebpf_", "netmanager_module_"} {
		if strings.Contains(body, absent) {
			t.Errorf("scrape has %s samples:\n%s", absent, body)
		}
	}
}

// Two module names can make one metric name; a sample that does not fit the
// family it lands in is refused, its instance flagged, and the rest of the
// scrape (the runtime's metrics last) is whole.
func TestMetricsScrapeRefusesAClash(t *testing.T) {
	sample := func(gauge bool) []module.Metric {
		return []module.Metric{{Name: "up_total", Gauge: gauge, Value: 1}}
	}
	body, fams := scrape(t, metricsSources{version: "v", api: &countingDeployer{}, services: func() []deploy.Record { return nil },
		ebpf: func() ebpfmanager.Metrics {
			return ebpfmanager.Metrics{Instances: []ebpfmanager.InstanceMetrics{
				{ID: "1", Module: "sd-wan", State: ebpfmanager.StateRunning, Samples: sample(false)},
				{ID: "2", Module: "sd_wan", State: ebpfmanager.StateRunning, Samples: sample(true)},
			}}
		}})
	for _, want := range []string{
		`netmanager_module_sd_wan_up_total{instance="1",module="sd-wan"} 1`,
		`netmanager_ebpf_scrape_error{instance="1",module="sd-wan"} 0`,
		`netmanager_ebpf_scrape_error{instance="2",module="sd_wan"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if fams["go_goroutines"] == nil || len(fams["netmanager_module_sd_wan_up_total"].Metric) != 1 {
		t.Errorf("the scrape is not whole:\n%s", body)
	}
}
