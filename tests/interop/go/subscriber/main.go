// Command subscriber receives CloudEvents over HTTP and decodes them with the official Go SDK.
//
//	subscriber [PORT]     # 0 or nothing: a free port; the port is printed as the first stdout line
//
// Every request is answered 200 and reported as one JSON line on stdout: the path, the raw Content-Type and
// body as they arrived, and what the SDK decoded (binding.ToEvent on the SDK's HTTP message): every context
// attribute, the extensions and the data bytes. A request the SDK cannot decode is reported with its error.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

// data is what the SDK decoded; sdk-go always hands out bytes (Event.Data), so kind is always "bytes".
type data struct {
	Kind string `json:"kind"`
	B64  string `json:"b64"`
}

type decoded struct {
	Attributes map[string]string `json:"attributes"`
	Data       *data             `json:"data"`
}

type received struct {
	Path        string            `json:"path"`
	ContentType *string           `json:"content_type"`
	Headers     map[string]string `json:"headers"`
	BodyB64     string            `json:"body_b64"`
	Event       *decoded          `json:"event,omitempty"`
	Error       string            `json:"error,omitempty"`
}

func decode(req *http.Request, body []byte) (*decoded, error) {
	msg := cehttp.NewMessage(req.Header, io.NopCloser(bytes.NewReader(body)))
	e, err := binding.ToEvent(req.Context(), msg)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{
		"specversion": e.SpecVersion(), "id": e.ID(), "source": e.Source(), "type": e.Type(),
	}
	if e.Subject() != "" {
		attrs["subject"] = e.Subject()
	}
	if !e.Time().IsZero() {
		attrs["time"] = e.Time().UTC().Format(time.RFC3339Nano)
	}
	if e.DataContentType() != "" {
		attrs["datacontenttype"] = e.DataContentType()
	}
	if e.DataSchema() != "" {
		attrs["dataschema"] = e.DataSchema()
	}
	for name, value := range e.Extensions() {
		s, err := types.ToString(value)
		if err != nil {
			return nil, err
		}
		attrs[name] = s
	}
	out := &decoded{Attributes: attrs}
	if bytes := e.Data(); bytes != nil {
		out.Data = &data{Kind: "bytes", B64: base64.StdEncoding.EncodeToString(bytes)}
	}
	return out, nil
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	listener, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintf(os.Stderr, "subscriber: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r := received{Path: req.URL.Path, Headers: map[string]string{}, BodyB64: base64.StdEncoding.EncodeToString(body)}
		for name, values := range req.Header {
			r.Headers[strings.ToLower(name)] = strings.Join(values, ", ")
		}
		if values := req.Header.Values("Content-Type"); len(values) > 0 {
			ct := strings.Join(values, ", ")
			r.ContentType = &ct
		}
		event, err := decode(req, body)
		if err != nil {
			r.Error = err.Error()
		}
		r.Event = event
		mu.Lock()
		err = out.Encode(r)
		mu.Unlock()
		if err != nil {
			os.Exit(1)
		}
		w.WriteHeader(http.StatusOK)
	})
	if err := http.Serve(listener, handler); err != nil {
		fmt.Fprintf(os.Stderr, "subscriber: %v\n", err)
		os.Exit(1)
	}
}
