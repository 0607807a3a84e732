package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The twin's kubelet: for every pod that kwok has made Running on a node, whose
// container is of an image the twin can run (images.go), it runs that container's
// program with the pod's volumes, environment and ServiceAccount, in a network
// namespace that carries the pod's IP (netns.go). It stops the process when the pod
// goes, and restarts it with a growing delay when it exits, as restartPolicy Always
// would. It does not write pod status: kwok's stages do, so a pod looks Ready while its
// program may still be starting (the twin's one pretence).

const (
	// serviceAccountDir is where a pod's ServiceAccount credentials are mounted.
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// kubeletDir holds the kubeconfig the twin gives a process, inside its mounts.
	kubeletDir = "/var/run/raas-twin"
)

// kubeletOptions configures the twin's kubelet.
type kubeletOptions struct {
	BinDir, Dir string
	Output      io.Writer
	// Host is how a pod reaches the host API server: HostGatewayIP and its port, with
	// the CA and the name its serving certificate carries.
	HostServer, HostServerName string
	HostCA                     []byte
	// PortForwards writes kwok's PortForward for each pod it runs (kwokserver.go).
	PortForwards bool
}

type kubelet struct {
	opts kubeletOptions
	host client.Client

	mu   sync.Mutex
	pods map[types.UID]*podProcess
}

// podProcess is the program the kubelet runs for one pod.
type podProcess struct {
	// mu guards exited and backoff, which the goroutine waiting for the process sets.
	mu      sync.Mutex
	key     string
	net     *podNetwork
	cmd     *exec.Cmd
	done    chan struct{}
	exited  time.Time
	backoff time.Duration
}

func newKubelet(host client.Client, opts kubeletOptions) *kubelet {
	return &kubelet{opts: opts, host: host, pods: map[types.UID]*podProcess{}}
}

// run syncs every second until ctx ends, then stops every process.
func (k *kubelet) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		k.sync(ctx)
		select {
		case <-ctx.Done():
			k.stopAll()
			return
		case <-tick.C:
		}
	}
}

func (k *kubelet) logf(format string, args ...any) {
	if k.opts.Output != nil {
		fmt.Fprintf(k.opts.Output, "twin kubelet: "+format+"\n", args...)
	}
}

func (k *kubelet) sync(ctx context.Context) {
	var pods corev1.PodList
	if err := k.host.List(ctx, &pods); err != nil {
		if ctx.Err() == nil {
			k.logf("list pods: %v", err)
		}
		return
	}
	want := map[types.UID]*corev1.Pod{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp == nil && pod.Spec.NodeName != "" &&
			pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" && runnable(pod) != nil {
			want[pod.UID] = pod
		}
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	for uid, p := range k.pods {
		if want[uid] == nil {
			k.logf("%s: pod gone, stopping", p.key)
			p.stop()
			delete(k.pods, uid)
		}
	}
	for uid, pod := range want {
		p := k.pods[uid]
		if p != nil {
			select {
			case <-p.done:
			default:
				continue // running
			}
			p.mu.Lock()
			wait := time.Since(p.exited) < p.backoff
			p.mu.Unlock()
			if wait {
				continue
			}
		}
		started, err := k.start(ctx, pod, p)
		if err != nil {
			k.logf("%s/%s: %v", pod.Namespace, pod.Name, err)
			if p != nil {
				p.mu.Lock()
				p.exited = time.Now()
				p.mu.Unlock()
			}
			continue
		}
		k.pods[uid] = started
	}
}

// runnable is the pod's container that the twin runs, or nil.
func runnable(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if img, _ := imageOf(pod.Spec.Containers[i].Image); img != nil && img.binary != nil {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// start runs the pod's container; prev is its last run, if any.
func (k *kubelet) start(ctx context.Context, pod *corev1.Pod, prev *podProcess) (*podProcess, error) {
	key := pod.Namespace + "/" + pod.Name
	c := runnable(pod)
	img, tag := imageOf(c.Image)
	dir := filepath.Join(k.opts.Dir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID)[:8])

	files, err := newPodFiles(ctx, k.host, pod, dir, filepath.Join(k.opts.Dir, "volumes"))
	if err != nil {
		return nil, err
	}
	for _, ic := range pod.Spec.InitContainers {
		iimg, _ := imageOf(ic.Image)
		if iimg == nil || iimg.copies == nil || len(ic.VolumeMounts) == 0 {
			continue // an init container the twin only pretends to run
		}
		if err := linkFiles(k.opts.BinDir, files.volumes[ic.VolumeMounts[0].Name], iimg.copies); err != nil {
			return nil, fmt.Errorf("init container %s: %w", ic.Name, err)
		}
	}
	binds, err := files.Binds(*c)
	if err != nil {
		return nil, err
	}
	for path, names := range img.files {
		imageDir := filepath.Join(dir, "image", filepath.Base(path))
		if err := linkFiles(k.opts.BinDir, imageDir, names); err != nil {
			return nil, fmt.Errorf("image files %s: %w", path, err)
		}
		binds[path] = imageDir
	}
	env, err := files.Env(ctx, *c)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := k.kubeConfig(ctx, pod, c, env, binds, dir)
	if err != nil {
		return nil, err
	}
	binds[kubeletDir] = kubeconfig
	env = append(env,
		"KUBECONFIG="+kubeletDir+"/kubeconfig",
		"HOME="+kubeletDir,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	argv, err := img.argv(k.opts.BinDir, tag, c.Command, c.Args)
	if err != nil {
		return nil, err
	}

	p := prev
	if p == nil {
		if k.opts.PortForwards {
			if err := forwardPod(ctx, k.host, pod); err != nil {
				return nil, err
			}
		}
		n, err := newPodNetwork(ctx, string(pod.UID), pod.Status.PodIP)
		if err != nil {
			return nil, err
		}
		p = &podProcess{key: key, net: n}
	}
	// The process outlives this sync's ctx; stop ends it.
	cmd := p.net.Command(context.WithoutCancel(ctx), binds, argv...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := k.opts.Output
	if out == nil {
		out = io.Discard
	}
	w := &prefixWriter{prefix: "[" + key + "] ", w: out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		if prev == nil {
			_ = p.net.Close()
		}
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	k.logf("%s: started %s (pid %d, ip %s)", key, filepath.Base(argv[0]), cmd.Process.Pid, pod.Status.PodIP)
	p.cmd, p.done = cmd, make(chan struct{})
	go func(p *podProcess) {
		err := cmd.Wait()
		// What the program started (a syncer's kine and API server) would outlive it in
		// its process group, and hold the pod's ports against the restart.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		p.mu.Lock()
		p.exited = time.Now()
		p.backoff = min(max(2*p.backoff, 2*time.Second), 30*time.Second)
		p.mu.Unlock()
		k.logf("%s: exited: %v", key, err)
		close(p.done)
	}(p)
	return p, nil
}

// kubeConfig writes the kubeconfig the process uses, into a directory it returns, and
// mounts the ServiceAccount's credentials if the pod has none mounted. A pod of the
// host reaches the host API server. A pod that a vcluster synced has KUBERNETES_SERVICE_*
// set to its vcluster's Service, whose ClusterIP nothing routes here (no kube-proxy):
// the twin resolves it to the Service's ready endpoint, and checks the certificate
// against the ClusterIP, as a client through kube-proxy would.
func (k *kubelet) kubeConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, env []string, binds map[string]string, dir string) (string, error) {
	server, serverName, ca := k.opts.HostServer, k.opts.HostServerName, k.opts.HostCA
	saDir, mounted := binds[serviceAccountDir]
	if !mounted {
		saDir = filepath.Join(dir, "serviceaccount")
		files := &podFiles{host: k.host, pod: pod, dir: dir}
		token, err := files.token(ctx, &corev1.ServiceAccountTokenProjection{Path: "token"})
		if err != nil {
			return "", err
		}
		for name, data := range map[string][]byte{"token": []byte(token), "ca.crt": ca, "namespace": []byte(pod.Namespace)} {
			if err := writeFile(filepath.Join(saDir, name), data); err != nil {
				return "", err
			}
		}
		binds[serviceAccountDir] = saDir
	}
	if vip := envValue(env, "KUBERNETES_SERVICE_HOST"); vip != "" {
		addr, err := k.endpointOf(ctx, pod.Namespace, vip, envValue(env, "KUBERNETES_SERVICE_PORT"))
		if err != nil {
			return "", fmt.Errorf("container %s: %w", c.Name, err)
		}
		data, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
		if err != nil {
			return "", fmt.Errorf("container %s: %w", c.Name, err)
		}
		server, serverName, ca = "https://"+addr, vip, data
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["in-cluster"] = &clientcmdapi.Cluster{Server: server, TLSServerName: serverName, CertificateAuthorityData: ca}
	kc.AuthInfos["serviceaccount"] = &clientcmdapi.AuthInfo{TokenFile: serviceAccountDir + "/token"}
	kc.Contexts["in-cluster"] = &clientcmdapi.Context{Cluster: "in-cluster", AuthInfo: "serviceaccount", Namespace: pod.Namespace}
	kc.CurrentContext = "in-cluster"
	out := filepath.Join(dir, "kubelet")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	return out, clientcmd.WriteToFile(*kc, filepath.Join(out, "kubeconfig"))
}

// endpointOf is the address of a ready endpoint behind the Service in namespace whose
// ClusterIP is vip, for its port port.
func (k *kubelet) endpointOf(ctx context.Context, namespace, vip, port string) (string, error) {
	var services corev1.ServiceList
	if err := k.host.List(ctx, &services, client.InNamespace(namespace)); err != nil {
		return "", err
	}
	for _, svc := range services.Items {
		if svc.Spec.ClusterIP != vip {
			continue
		}
		var portName string
		found := false
		for _, p := range svc.Spec.Ports {
			if strconv.Itoa(int(p.Port)) == port {
				portName, found = p.Name, true
			}
		}
		if !found {
			return "", fmt.Errorf("service %s/%s has no port %s", namespace, svc.Name, port)
		}
		var slices discoveryv1.EndpointSliceList
		if err := k.host.List(ctx, &slices, client.InNamespace(namespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
			return "", err
		}
		for _, s := range slices.Items {
			for _, p := range s.Ports {
				if p.Port == nil || (p.Name != nil && *p.Name != portName) {
					continue
				}
				for _, e := range s.Endpoints {
					if (e.Conditions.Ready == nil || *e.Conditions.Ready) && len(e.Addresses) > 0 {
						return e.Addresses[0] + ":" + strconv.Itoa(int(*p.Port)), nil
					}
				}
			}
		}
		return "", fmt.Errorf("service %s/%s has no ready endpoint yet", namespace, svc.Name)
	}
	return "", fmt.Errorf("no service in %s has the cluster IP %s", namespace, vip)
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if len(kv) > len(name) && kv[:len(name)+1] == name+"=" {
			return kv[len(name)+1:]
		}
	}
	return ""
}

func (k *kubelet) stopAll() {
	k.mu.Lock()
	pods := k.pods
	k.pods = map[types.UID]*podProcess{}
	k.mu.Unlock()
	for _, p := range pods {
		p.stop()
	}
}

// stop ends the process group (the program and what it started: a syncer runs
// kube-apiserver, kube-controller-manager and kine), then removes the network.
func (p *podProcess) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		select {
		case <-p.done:
		default:
			pgid := p.cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
		// The goroutine that closed done killed what outlived the leader in its group.
	}
	if p.net != nil {
		_ = p.net.Close()
	}
}
