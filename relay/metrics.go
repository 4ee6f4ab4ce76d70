package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relaybox/relaybox/relay/proto"
)

// Metrics, all read from the core's counters at scrape time, so the
// relayed path pays nothing for them:
//
//	relaybox_up                                  1 while the relay serves (listen sockets open)
//	relaybox_allocations                         allocations now
//	relaybox_permissions                         permissions now
//	relaybox_channels                            channel bindings now
//	relaybox_bindings                            channel bindings in the data plane now
//	relaybox_relayed_packets_total{path}         datagrams relayed in user space, by path:
//	relaybox_relayed_bytes_total{path}             channel-to-peer, send-to-peer, peer-to-channel, peer-to-data
//	relaybox_responses_total{code}               TURN responses, by code (200 success)
//	relaybox_binding_responses_total             STUN Binding responses
//	relaybox_auth_failures_total                 requests with wrong, unknown or expired credentials
//	relaybox_dropped_total{reason}               datagrams that got nothing, by reason
//	relaybox_refused_peers_total{verdict}        peer addresses the policy refused, by verdict
//	relaybox_port_bind_failures_total            allocation ports that could not be opened
//	relaybox_send_errors_total                   datagrams the kernel would not send
//	relaybox_gro_reads_total, _gro_datagrams_total  reads that held several datagrams (UDP GRO), and those datagrams
//	relaybox_gso_datagrams_total                 datagrams sent as UDP GSO segments after their message's first
//	relaybox_gso_refused_total                   GSO messages the kernel refused (resent one by one)
//	relaybox_data_plane_errors_total             bindings the data plane refused
//	relaybox_data_plane_info{mode}               1, labelled with the data plane's mode
//	relaybox_data_plane_installed_bindings       channel bindings the data plane (the kernel) holds now
//	relaybox_data_plane_relayed_packets_total{path}  datagrams the data plane relayed, by path:
//	relaybox_data_plane_relayed_bytes_total{path}      channel-to-peer, peer-to-channel
//	relaybox_data_plane_packets_total{verdict,reason}  packets the XDP program saw, by verdict and reason
//	relaybox_data_plane_bytes_total{verdict,reason}    (tx, redirect: relayed; pass: to user space)
//	relaybox_data_plane_class_packets_total{class}     what it saw addressed to the relay, by class
//	relaybox_data_plane_class_bytes_total{class}
//	relaybox_data_plane_{counter}_total          the data plane's own counters
//
// The data plane's numbers are read from the kernel at scrape time too.
//
// plus the Go runtime's and the process's (go_*, process_*).

var (
	descUp          = prometheus.NewDesc("relaybox_up", "1 while the relay serves: its listen sockets are open.", nil, nil)
	descAllocations = prometheus.NewDesc("relaybox_allocations", "TURN allocations now.", nil, nil)
	descPermissions = prometheus.NewDesc("relaybox_permissions", "TURN permissions now.", nil, nil)
	descChannels    = prometheus.NewDesc("relaybox_channels", "TURN channel bindings now.", nil, nil)
	descBindings    = prometheus.NewDesc("relaybox_bindings", "Channel bindings in the data plane now.", nil, nil)
	descPackets     = prometheus.NewDesc("relaybox_relayed_packets_total", "Datagrams relayed in user space, by path.", []string{"path"}, nil)
	descBytes       = prometheus.NewDesc("relaybox_relayed_bytes_total", "Payload bytes relayed in user space, by path.", []string{"path"}, nil)
	descResponses   = prometheus.NewDesc("relaybox_responses_total", "TURN responses sent, by code (200 for success).", []string{"code"}, nil)
	descBindingResp = prometheus.NewDesc("relaybox_binding_responses_total", "STUN Binding responses sent.", nil, nil)
	descAuthFail    = prometheus.NewDesc("relaybox_auth_failures_total", "Requests whose credentials were wrong, unknown, expired or incomplete.", nil, nil)
	descDropped     = prometheus.NewDesc("relaybox_dropped_total", "Datagrams that got nothing, by reason.", []string{"reason"}, nil)
	descRefused     = prometheus.NewDesc("relaybox_refused_peers_total", "Peer addresses refused by the peer policy, by verdict.", []string{"verdict"}, nil)
	descBindFail    = prometheus.NewDesc("relaybox_port_bind_failures_total", "Allocation ports that could not be opened.", nil, nil)
	descSendErr     = prometheus.NewDesc("relaybox_send_errors_total", "Datagrams the kernel would not send.", nil, nil)
	descGROReads    = prometheus.NewDesc("relaybox_gro_reads_total", "Reads that held several datagrams joined by UDP GRO.", nil, nil)
	descGRODgrams   = prometheus.NewDesc("relaybox_gro_datagrams_total", "Datagrams received in reads joined by UDP GRO.", nil, nil)
	descGSODgrams   = prometheus.NewDesc("relaybox_gso_datagrams_total", "Datagrams sent as UDP GSO segments after their message's first.", nil, nil)
	descGSORefused  = prometheus.NewDesc("relaybox_gso_refused_total", "UDP GSO messages the kernel refused; their datagrams were sent one by one.", nil, nil)
	descPlaneErr    = prometheus.NewDesc("relaybox_data_plane_errors_total", "Bindings the data plane refused.", nil, nil)
	descPlaneInfo   = prometheus.NewDesc("relaybox_data_plane_info", "1, labelled with the data plane's mode.", []string{"mode"}, nil)
	descPlaneBind   = prometheus.NewDesc("relaybox_data_plane_installed_bindings", "Channel bindings the data plane holds now.", nil, nil)
	descPlanePkts   = prometheus.NewDesc("relaybox_data_plane_relayed_packets_total", "Datagrams the data plane (the kernel) relayed, by path.", []string{"path"}, nil)
	descPlaneBytes  = prometheus.NewDesc("relaybox_data_plane_relayed_bytes_total", "Payload bytes the data plane (the kernel) relayed, by path.", []string{"path"}, nil)
	descReasonPkts  = prometheus.NewDesc("relaybox_data_plane_packets_total", "Packets the XDP program saw, by verdict and the reason for it.", []string{"verdict", "reason"}, nil)
	descReasonBytes = prometheus.NewDesc("relaybox_data_plane_bytes_total", "Frame bytes the XDP program saw, by verdict and the reason for it.", []string{"verdict", "reason"}, nil)
	descClassPkts   = prometheus.NewDesc("relaybox_data_plane_class_packets_total", "UDP datagrams to the relay the XDP program saw, by class.", []string{"class"}, nil)
	descClassBytes  = prometheus.NewDesc("relaybox_data_plane_class_bytes_total", "UDP payload bytes to the relay the XDP program saw, by class.", []string{"class"}, nil)
)

// collector reads the Server's numbers at scrape time.
type collector struct{ s *Server }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status(0)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	up := 0.0
	if st.Ready {
		up = 1
	}
	gauge(descUp, up)
	gauge(descAllocations, float64(st.Allocations))
	gauge(descPermissions, float64(st.Permissions))
	gauge(descChannels, float64(st.Channels))
	gauge(descBindings, float64(st.Bindings))
	for p := range proto.NumPaths {
		t := st.Relayed[p.String()]
		counter(descPackets, t.Packets, p.String())
		counter(descBytes, t.Bytes, p.String())
	}
	for code, n := range st.Responses {
		counter(descResponses, n, code)
	}
	counter(descBindingResp, st.BindingResponses)
	counter(descAuthFail, st.AuthFailures)
	for reason, n := range st.Dropped {
		counter(descDropped, n, reason)
	}
	for verdict, n := range st.RefusedPeers {
		counter(descRefused, n, verdict)
	}
	counter(descBindFail, st.BindFailures)
	counter(descSendErr, st.SendErrors)
	counter(descGROReads, st.Offload.GROReads)
	counter(descGRODgrams, st.Offload.GRODatagrams)
	counter(descGSODgrams, st.Offload.GSODatagrams)
	counter(descGSORefused, st.Offload.GSORefused)
	counter(descPlaneErr, st.DataPlaneErrs)
	gauge(descPlaneInfo, 1, st.DataPlane.Mode)
	gauge(descPlaneBind, float64(st.DataPlane.Installed))
	for path, t := range st.DataPlane.Relayed {
		counter(descPlanePkts, t.Packets, path)
		counter(descPlaneBytes, t.Bytes, path)
	}
	for reason, c := range st.DataPlane.Reasons {
		counter(descReasonPkts, c.Packets, c.Verdict, reason)
		counter(descReasonBytes, c.Bytes, c.Verdict, reason)
	}
	for class, t := range st.DataPlane.Classes {
		counter(descClassPkts, t.Packets, class)
		counter(descClassBytes, t.Bytes, class)
	}
	for name, n := range st.DataPlane.Counters {
		d := prometheus.NewDesc("relaybox_data_plane_"+metricName(name)+"_total", "The data plane's "+name+" counter.", nil, nil)
		counter(d, n)
	}
}

// metricName turns a counter name such as "pass-stun" into a metric name
// part ("pass_stun").
func metricName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// MetricsHandler serves /metrics, /healthz (200 while the process runs) and
// /readyz (200 while the relay serves, 503 before and while it stops).
func (s *Server) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// serveMetrics listens on cfg.Metrics and serves MetricsHandler until stop.
func (s *Server) serveMetrics() (stop func(), err error) {
	var l net.Listener
	err = s.inNamespace(func() error {
		var err error
		l, err = net.Listen("tcp", s.cfg.Metrics)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w: choose another --metrics address, or --metrics= for none", s.cfg.Metrics, err)
	}
	srv := &http.Server{Handler: s.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
	s.metricsAddr = l.Addr().String()
	s.log.Info("metrics", "url", "http://"+s.metricsAddr+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// MetricsAddr is the address the metrics server listens on (the port
// chosen for :0), empty without one.
func (s *Server) MetricsAddr() string { return s.metricsAddr }
