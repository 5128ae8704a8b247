package mqtt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt/mqtttest"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// testCA writes a CA and a server certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "schnitzel test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "PRIVATE KEY", keyDER)
}

func TestTLS(t *testing.T) {
	ca, cert, key := testCA(t)
	b := mqtttest.Start(t, mqtttest.Options{CAFile: ca, CertFile: cert, KeyFile: key})
	url := b.URL("ssl")
	src := runSource(t, packet.MapOf("url", url, "topic", "tls/x", "tls_ca_file", ca), plugin.Env{NodeID: "src"})
	snk := build(t, sinkName, packet.MapOf("url", strings.Replace(url, "ssl:", "mqtts:", 1), "topic", "tls/x", "tls_ca_file", ca), plugin.Env{NodeID: "snk"})
	if err := snk.(plugin.BatchProcessor).ProcessBatch(t.Context(), events(3), &plugintest.Collector{}); err != nil {
		t.Fatal(err)
	}
	if got := src.waitN(t, 3); len(got) != 3 {
		t.Errorf("got %d packets, want 3", len(got))
	}

	// without the test CA the broker's certificate is not trusted
	var logs logbuf.Buffer
	untrusted := build(t, sinkName, packet.MapOf("url", url, "topic", "tls/x"), plugin.Env{NodeID: "nocas", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	poll.Until(t, wait, "a certificate error", func() bool { return strings.Contains(logs.String(), "certificate") })
	if metric(untrusted, "connected") != 0 {
		t.Error("connected to a broker whose certificate it cannot verify")
	}
}
