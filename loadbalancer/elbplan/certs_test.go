package elbplan

import (
	"encoding/pem"
	"strings"
	"testing"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/testcert"

	"github.com/sacloud/iaas-api-go"
)

// pair makes a self-signed certificate for cn and its key, as PEM.
func pair(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := testcert.SelfSigned(cn)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestCertificatesFromSecrets(t *testing.T) {
	leaf, key := pair(t, "www.example.com")
	inter, _ := pair(t, "Example CA")
	other, otherKey := pair(t, "api.example.com")

	got, errs := Certificates([]CertSource{{Source: "ns/www", Chain: append(append([]byte{}, leaf...), inter...), Key: key}, {Source: "ns/api", Chain: other, Key: otherKey}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(got) != 2 || got[0].CommonName != "www.example.com" || got[0].Intermediate != string(inter) || got[1].Intermediate != "" {
		t.Fatalf("got %+v", got)
	}
	req := SetCertificatesRequest(got)
	if req.PrimaryCerts == nil || req.PrimaryCerts.ServerCertificate != string(leaf) || req.PrimaryCerts.PrivateKey != string(key) ||
		len(req.AdditionalCerts) != 1 || req.AdditionalCerts[0].PrivateKey != string(otherKey) {
		t.Fatalf("request does not carry the certificates and keys in order")
	}

	for name, c := range map[string]struct {
		src  CertSource
		says string
	}{
		"empty crt":         {CertSource{Source: "ns/a", Key: key}, "tls.crt is empty"},
		"empty key":         {CertSource{Source: "ns/a", Chain: leaf}, "tls.key is empty"},
		"not PEM":           {CertSource{Source: "ns/a", Chain: []byte("hello"), Key: key}, "no PEM certificate"},
		"key in tls.crt":    {CertSource{Source: "ns/a", Chain: append(append([]byte{}, leaf...), key...), Key: key}, `type "PRIVATE KEY"`},
		"key of another":    {CertSource{Source: "ns/a", Chain: leaf, Key: otherKey}, "does not fit"},
		"intermediate junk": {CertSource{Source: "ns/a", Chain: append(append([]byte{}, leaf...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})...), Key: key}, "intermediate certificate 1"},
	} {
		_, errs := Certificates([]CertSource{c.src})
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.says) || !strings.Contains(errs[0].Error(), "ns/a") {
			t.Errorf("%s: errs = %v, want one naming ns/a and saying %q", name, errs, c.says)
		}
		for _, e := range errs {
			if strings.Contains(e.Error(), "PRIVATE KEY-----") || strings.Contains(e.Error(), string(key[40:60])) {
				t.Errorf("%s: the error shows key material", name)
			}
		}
	}
	many := make([]CertSource, MaxAdditionalCerts+2)
	for i := range many {
		many[i] = CertSource{Source: "ns/x", Chain: leaf, Key: key}
	}
	if _, errs := Certificates(many); len(errs) == 0 {
		t.Error("more than the ELB serves was accepted")
	}
}

func TestCertificatesDiffer(t *testing.T) {
	leaf, key := pair(t, "www.example.com")
	inter, _ := pair(t, "Example CA")
	next, nextKey := pair(t, "www.example.com")
	want, _ := Certificates([]CertSource{{Source: "s", Chain: append(append([]byte{}, leaf...), inter...), Key: key}})
	rotated, _ := Certificates([]CertSource{{Source: "s", Chain: next, Key: nextKey}})
	rewrapped := strings.ReplaceAll(string(leaf), "\n", "\r\n") + "\n"
	for name, c := range map[string]struct {
		have *iaas.ProxyLBCertificates
		want []Cert
		diff bool
	}{
		"none set":         {&iaas.ProxyLBCertificates{}, want, true},
		"nil":              {nil, want, true},
		"same":             {&iaas.ProxyLBCertificates{PrimaryCert: &iaas.ProxyLBPrimaryCert{ServerCertificate: string(leaf), IntermediateCertificate: string(inter)}}, want, false},
		"same, rewrapped":  {&iaas.ProxyLBCertificates{PrimaryCert: &iaas.ProxyLBPrimaryCert{ServerCertificate: rewrapped, IntermediateCertificate: string(inter)}}, want, false},
		"rotated":          {&iaas.ProxyLBCertificates{PrimaryCert: &iaas.ProxyLBPrimaryCert{ServerCertificate: string(leaf), IntermediateCertificate: string(inter)}}, rotated, true},
		"intermediate off": {&iaas.ProxyLBCertificates{PrimaryCert: &iaas.ProxyLBPrimaryCert{ServerCertificate: string(leaf)}}, want, true},
		"extra additional": {&iaas.ProxyLBCertificates{PrimaryCert: &iaas.ProxyLBPrimaryCert{ServerCertificate: string(leaf), IntermediateCertificate: string(inter)},
			AdditionalCerts: []*iaas.ProxyLBAdditionalCert{{ServerCertificate: string(next)}}}, want, true},
	} {
		if got := CertificatesDiffer(c.want, c.have); got != c.diff {
			t.Errorf("%s: differ = %v, want %v", name, got, c.diff)
		}
	}
}
