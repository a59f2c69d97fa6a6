// Command producer sends CloudEvents to a URL with the official Go SDK (github.com/cloudevents/sdk-go/v2).
//
//	producer URL binary|structured|batch 1.0|0.3 < events.json
//
// stdin is a JSON array of event specs (see tests/interop/cases.py). Binary and structured mode go through
// the SDK's own client (cloudevents.NewClient over its HTTP protocol); batch mode uses the SDK's batch
// serializer cehttp.NewHTTPRequestFromEvents, because the client's Send takes one event. For every HTTP
// request one JSON line goes to stdout: the event ids, the status, and the headers and body as sent (captured
// by a RoundTripper, so the test compares against the wire, not against what we meant to send).
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

type spec struct {
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	Subject         *string           `json:"subject"`
	Time            *string           `json:"time"`
	DataContentType *string           `json:"datacontenttype"`
	Extensions      map[string]string `json:"extensions"`
	DataB64         *string           `json:"data_b64"`
	DataJSON        bool              `json:"data_json"`
}

type sent struct {
	IDs     []string          `json:"ids"`
	Status  int               `json:"status"`
	Error   string            `json:"error,omitempty"`
	Headers map[string]string `json:"headers"`
	BodyB64 string            `json:"body_b64"`
}

// recorder keeps the last request exactly as the SDK handed it to net/http.
type recorder struct {
	next    http.RoundTripper
	headers map[string]string
	body    []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.headers = map[string]string{}
	for name, values := range req.Header {
		r.headers[name] = strings.Join(values, ", ")
	}
	r.body = nil
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		r.body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return r.next.RoundTrip(req)
}

func build(s spec, specversion, mode string) (cloudevents.Event, error) {
	e := cloudevents.NewEvent(specversion)
	e.SetID(s.ID)
	e.SetSource(s.Source)
	e.SetType(s.Type)
	if s.Subject != nil {
		e.SetSubject(*s.Subject)
	}
	if s.Time != nil {
		t, err := time.Parse(time.RFC3339Nano, *s.Time)
		if err != nil {
			return e, err
		}
		e.SetTime(t)
	}
	for name, value := range s.Extensions {
		e.SetExtension(name, value)
	}
	contentType := ""
	if s.DataContentType != nil {
		contentType = *s.DataContentType
	}
	if s.DataB64 == nil {
		if contentType != "" {
			e.SetDataContentType(contentType)
		}
		return e, e.Validate()
	}
	data, err := base64.StdEncoding.DecodeString(*s.DataB64)
	if err != nil {
		return e, err
	}
	switch {
	case s.DataJSON && mode != "binary":
		// A Go user with JSON in hand embeds it; the SDK writes it as the `data` member (via encoding/json).
		err = e.SetData(contentType, json.RawMessage(data))
	case strings.HasPrefix(contentType, "text/"):
		// Text is a string to a Go user (and to the SDK's text codec, which 0.3 events go through).
		err = e.SetData(contentType, string(data))
	case specversion == cloudevents.VersionV03 && !s.DataJSON:
		// For 0.3, SetData runs every payload through a codec, and there is none for octet-stream
		// ("[encode] unsupported content type"); the SDK's exported DataEncoded is the way to raw bytes.
		// The JSON format carries them as base64 under datacontentencoding; binary mode as the raw body.
		e.SetDataContentType(contentType)
		e.DataEncoded = data
		if mode != "binary" {
			e.SetDataContentEncoding(cloudevents.Base64)
		}
	default:
		// []byte is written verbatim as the binary-mode body and as data_base64 in structured mode.
		err = e.SetData(contentType, data)
	}
	if err != nil {
		return e, err
	}
	return e, e.Validate()
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: producer URL binary|structured|batch 1.0|0.3 < events.json")
		os.Exit(2)
	}
	url, mode, specversion := os.Args[1], os.Args[2], os.Args[3]
	var specs []spec
	if err := json.NewDecoder(os.Stdin).Decode(&specs); err != nil {
		fail("stdin is not a JSON array of events: %v", err)
	}
	events := make([]cloudevents.Event, 0, len(specs))
	for _, s := range specs {
		e, err := build(s, specversion, mode)
		if err != nil {
			fail("event %q: %v", s.ID, err)
		}
		events = append(events, e)
	}
	rec := &recorder{next: http.DefaultTransport}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	ctx := context.Background()
	switch mode {
	case "binary", "structured":
		client, err := cloudevents.NewClientHTTP(cehttp.WithRoundTripper(rec))
		if err != nil {
			fail("client: %v", err)
		}
		sendCtx := cloudevents.ContextWithTarget(ctx, url)
		if mode == "structured" {
			sendCtx = binding.WithForceStructured(sendCtx)
		} else {
			sendCtx = binding.WithForceBinary(sendCtx)
		}
		for _, e := range events {
			result := client.Send(sendCtx, e)
			record := sent{IDs: []string{e.ID()}, Headers: rec.headers, BodyB64: base64.StdEncoding.EncodeToString(rec.body)}
			var httpResult *cehttp.Result
			if cloudevents.ResultAs(result, &httpResult) {
				record.Status = httpResult.StatusCode
			} else if !cloudevents.IsACK(result) {
				record.Error = result.Error()
			}
			must(out.Encode(record))
		}
	case "batch":
		req, err := cehttp.NewHTTPRequestFromEvents(ctx, url, events)
		if err != nil {
			fail("batch: %v", err)
		}
		ids := make([]string, 0, len(events))
		for _, e := range events {
			ids = append(ids, e.ID())
		}
		record := sent{IDs: ids}
		resp, err := (&http.Client{Transport: rec, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			record.Error = err.Error()
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			record.Status = resp.StatusCode
		}
		record.Headers, record.BodyB64 = rec.headers, base64.StdEncoding.EncodeToString(rec.body)
		must(out.Encode(record))
	default:
		fail("mode %q is not binary, structured or batch", mode)
	}
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "producer: "+format+"\n", args...)
	os.Exit(1)
}
