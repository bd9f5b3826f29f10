// Command resolve-go resolves a name the way a pure-Go application does.
//
// It uses Go's own stub resolver (net.Resolver with PreferGo, built with
// CGO_ENABLED=0), which reads /etc/nsswitch.conf, /etc/hosts and
// /etc/resolv.conf itself and applies search lists and ndots its own way.
// Each lookup prints one JSON line; the schema is shared with resolve-musl
// and described in images/README.md.
//
// Usage: resolve-go [-family 4|6|any] [-type A|AAAA|SRV|PTR|CNAME] [-count N]
// [-timeout D] [-server HOST:PORT] NAME
//
// Exit: 0 every lookup answered, 2 a lookup found no such name (Go reports
// NXDOMAIN and an empty answer alike as "not found"), 1 any other failure,
// 64 bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

const (
	exitFailure  = 1
	exitNXDomain = 2
	exitUsage    = 64
)

// result is one lookup's evidence, one JSON line.
type result struct {
	Resolver  string   `json:"resolver"`
	Seq       int      `json:"seq"`
	Name      string   `json:"name"`
	Family    string   `json:"family"`
	Type      string   `json:"type"`
	Status    string   `json:"status"`
	Addresses []string `json:"addresses"`
	Records   []string `json:"records"`
	Canonical *string  `json:"canonical"`
	Error     *string  `json:"error"`
	ElapsedMS float64  `json:"elapsed_ms"`
}

// query is what one lookup asks; answer fills in a result.
type query struct {
	resolver *net.Resolver
	name     string
	family   string
	qtype    string
	timeout  time.Duration
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("resolve-go", flag.ContinueOnError)
	family := fs.String("family", "any", "address family for address lookups: 4, 6 or any")
	qtype := fs.String("type", "ADDR", "what to look up: ADDR (getaddrinfo-like), A, AAAA, SRV, PTR (NAME is an IP) or CNAME")
	count := fs.Int("count", 1, "number of lookups, one JSON line each (latency sampling)")
	timeout := fs.Duration("timeout", 5*time.Second, "limit for each lookup")
	server := fs.String("server", "", "send DNS queries to HOST:PORT instead of the resolv.conf nameservers")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		return usage("exactly one NAME")
	}
	q := query{name: fs.Arg(0), family: *family, qtype: strings.ToUpper(*qtype), timeout: *timeout}
	switch {
	case q.family != "4" && q.family != "6" && q.family != "any":
		return usage("-family takes 4, 6 or any")
	case *count < 1 || *count > 100000:
		return usage("-count takes a number from 1 to 100000")
	}
	// A and AAAA are address lookups pinned to one family.
	switch q.qtype {
	case "A", "AAAA":
		want := map[string]string{"A": "4", "AAAA": "6"}[q.qtype]
		if q.family != "any" && q.family != want {
			return usage("-type " + q.qtype + " contradicts -family " + q.family)
		}
		q.family = want
	case "ADDR", "SRV", "PTR", "CNAME":
	default:
		return usage("-type takes ADDR, A, AAAA, SRV, PTR or CNAME")
	}

	q.resolver = &net.Resolver{PreferGo: true}
	if *server != "" {
		target := *server
		q.resolver.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		}
	}

	worst := 0
	enc := json.NewEncoder(os.Stdout)
	for seq := 1; seq <= *count; seq++ {
		r, code := q.answer(seq)
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "resolve-go: writing result:", err)
			return exitFailure
		}
		// The exit code tells the worst outcome: any failure over NXDOMAIN over success.
		if code == exitFailure || (code == exitNXDomain && worst == 0) {
			worst = code
		}
	}
	return worst
}

func usage(why string) int {
	fmt.Fprintf(os.Stderr, "resolve-go: %s\nusage: resolve-go [-family 4|6|any] [-type A|AAAA|SRV|PTR|CNAME] [-count N] [-timeout D] [-server HOST:PORT] NAME\n", why)
	return exitUsage
}

func (q query) answer(seq int) (result, int) {
	r := result{
		Resolver: "go", Seq: seq, Name: q.name, Family: q.family, Type: q.qtype,
		Addresses: []string{}, Records: []string{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()

	started := time.Now()
	err := q.lookup(ctx, &r)
	r.ElapsedMS = float64(time.Since(started).Microseconds()) / 1000

	if err == nil {
		r.Status = "ok"
		return r, 0
	}
	msg := err.Error()
	r.Error = &msg
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		r.Status = "nxdomain"
		return r, exitNXDomain
	}
	r.Status = "error"
	return r, exitFailure
}

func (q query) lookup(ctx context.Context, r *result) error {
	switch q.qtype {
	case "SRV":
		_, srvs, err := q.resolver.LookupSRV(ctx, "", "", q.name)
		for _, s := range srvs {
			r.Records = append(r.Records, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
		}
		return err
	case "PTR":
		names, err := q.resolver.LookupAddr(ctx, q.name)
		r.Records = append(r.Records, names...)
		return err
	case "CNAME":
		cname, err := q.resolver.LookupCNAME(ctx, q.name)
		if err == nil {
			r.Records = append(r.Records, cname)
			r.Canonical = &cname
		}
		return err
	}
	network := map[string]string{"4": "ip4", "6": "ip6", "any": "ip"}[q.family]
	addrs, err := q.resolver.LookupNetIP(ctx, network, q.name)
	for _, a := range addrs {
		r.Addresses = append(r.Addresses, a.Unmap().String())
	}
	return err
}
