package vclusterconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// A vcluster exports a kubeconfig that names its in-cluster Service
// (https://<release>.<namespace>:443, exportKubeConfig.server). Inside the host cluster
// that resolves; from a laptop or a CI job it does not. There raas reaches the vcluster
// the way `kubectl port-forward svc/<release>` does: through the host API server, to a
// ready pod behind the Service. Each connection is a stream of one port-forward
// session, so TLS still runs end to end between raas and the vcluster, with the client
// certificate of the exported kubeconfig, and the certificate is checked against the
// in-cluster name (the chart puts it in the vcluster's SANs).
//
// It is written on client-go's SPDY dialer and the port-forward protocol constants
// rather than on tools/portforward's PortForwarder, which binds local listeners: a
// dialer per connection needs no port on the machine and reconnects by itself when the
// session or the pod goes.

// RESTConfigVia parses the kubeconfig and, when its server's name does not resolve here
// and names a Service (<service>.<namespace>[.svc...]), reaches it through host.
func (k Kubeconfig) RESTConfigVia(host *rest.Config) (*rest.Config, error) {
	cfg, err := k.RESTConfig()
	if err != nil || host == nil {
		return cfg, err
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: server %q: %w", cfg.Host, err)
	}
	name := u.Hostname()
	service, namespace, ok := serviceName(name)
	if !ok || resolves(name) {
		return cfg, nil
	}
	port := 443
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("kubeconfig: server %q: %w", cfg.Host, err)
		}
	}
	f, err := newForwarder(host, namespace, service, port)
	if err != nil {
		return nil, err
	}
	cfg.Dial = f.dial
	if cfg.TLSClientConfig.ServerName == "" {
		cfg.TLSClientConfig.ServerName = name
	}
	return cfg, nil
}

// serviceName splits <service>.<namespace>[.svc[.<domain>]].
func serviceName(host string) (service, namespace string, ok bool) {
	if net.ParseIP(host) != nil {
		return "", "", false
	}
	parts := strings.Split(host, ".")
	if len(parts) < 2 || (len(parts) > 2 && parts[2] != "svc") {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// resolves says whether name resolves here within a second.
func resolves(name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	return err == nil && len(addrs) > 0
}

// forwarder opens port-forward streams to a ready pod of one Service.
type forwarder struct {
	host               *rest.Config
	client             kubernetes.Interface
	namespace, service string
	port               int

	mu      sync.Mutex
	conn    httpstream.Connection
	pod     string
	podPort int
	nextID  atomic.Int64
}

func newForwarder(host *rest.Config, namespace, service string, port int) (*forwarder, error) {
	c, err := kubernetes.NewForConfig(host)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s: %w", namespace, service, err)
	}
	return &forwarder{host: host, client: c, namespace: namespace, service: service, port: port}, nil
}

// dial opens one stream; it ignores the address, which is the unresolvable name.
func (f *forwarder) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	conn, port, err := f.session(ctx)
	if err != nil {
		return nil, err
	}
	id := strconv.FormatInt(f.nextID.Add(1), 10)
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		f.drop(conn)
		return nil, fmt.Errorf("port-forward to %s/%s: %w", f.namespace, f.pod, err)
	}
	_ = errStream.Close() // nothing is sent on it
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		f.drop(conn)
		return nil, fmt.Errorf("port-forward to %s/%s: %w", f.namespace, f.pod, err)
	}
	go func() {
		// The kubelet reports a failed dial of the pod's port here; closing the data
		// stream makes the caller's read fail instead of hanging.
		if msg, _ := io.ReadAll(errStream); len(msg) > 0 {
			_ = data.Reset()
		}
	}()
	return &streamConn{Stream: data, remote: f.pod + ":" + strconv.Itoa(port)}, nil
}

// session returns the open port-forward session, opening one to a ready pod if there is
// none or the last one closed.
func (f *forwarder) session(ctx context.Context) (httpstream.Connection, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		select {
		case <-f.conn.CloseChan():
			f.conn = nil
		default:
			return f.conn, f.podPort, nil
		}
	}
	pod, port, err := f.readyPod(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("port-forward to service %s/%s: %w", f.namespace, f.service, err)
	}
	rt, upgrader, err := spdy.RoundTripperFor(f.host)
	if err != nil {
		return nil, 0, err
	}
	req := f.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.namespace).Name(pod).SubResource("portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, req.URL())
	conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, 0, fmt.Errorf("port-forward to pod %s/%s: %w", f.namespace, pod, err)
	}
	f.conn, f.pod, f.podPort = conn, pod, port
	return conn, port, nil
}

func (f *forwarder) drop(conn httpstream.Connection) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn == conn {
		_ = conn.Close()
		f.conn = nil
	}
}

// readyPod picks a ready pod behind the Service, by name, and the container port its
// port f.port targets.
func (f *forwarder) readyPod(ctx context.Context) (string, int, error) {
	svc, err := f.client.CoreV1().Services(f.namespace).Get(ctx, f.service, metav1.GetOptions{})
	if err != nil {
		return "", 0, err
	}
	var target *intstr.IntOrString
	for i, p := range svc.Spec.Ports {
		if int(p.Port) == f.port {
			target = &svc.Spec.Ports[i].TargetPort
		}
	}
	if target == nil {
		return "", 0, fmt.Errorf("the service has no port %d", f.port)
	}
	if len(svc.Spec.Selector) == 0 {
		return "", 0, errors.New("the service selects no pods")
	}
	pods, err := f.client.CoreV1().Pods(f.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String(),
	})
	if err != nil {
		return "", 0, err
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil || !podReady(&pod) {
			continue
		}
		port, err := containerPort(&pod, *target, f.port)
		if err != nil {
			return "", 0, err
		}
		return pod.Name, port, nil
	}
	return "", 0, errors.New("no ready pod behind the service")
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// containerPort resolves a Service's targetPort on pod; an unset one is the port itself.
func containerPort(pod *corev1.Pod, target intstr.IntOrString, port int) (int, error) {
	switch {
	case target.Type == intstr.Int && target.IntVal == 0:
		return port, nil
	case target.Type == intstr.Int:
		return int(target.IntVal), nil
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == target.StrVal {
				return int(p.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("pod %s has no port named %q", pod.Name, target.StrVal)
}

// streamConn is a port-forward data stream as a net.Conn. Deadlines are not supported
// by the stream; the HTTP client's own timeouts bound each request.
type streamConn struct {
	httpstream.Stream
	remote string
}

func (c *streamConn) LocalAddr() net.Addr              { return forwardAddr("port-forward") }
func (c *streamConn) RemoteAddr() net.Addr             { return forwardAddr(c.remote) }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

type forwardAddr string

func (a forwardAddr) Network() string { return "port-forward" }
func (a forwardAddr) String() string  { return string(a) }
