package tracing

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/projector-dev/projector/internal/version"
)

// The OTEL_* environment variables tracing reads itself; the exporters, the sampler and the
// batch span processor read the others of the OpenTelemetry specification (endpoints,
// headers, timeouts, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES).
const (
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvServiceName    = "OTEL_SERVICE_NAME"
	// EnvResourceAttributes is read by the SDK's resource, as EnvServiceName is.
	EnvResourceAttributes = "OTEL_RESOURCE_ATTRIBUTES"
)

// The values tracing knows.
const (
	defaultServiceName   = "projector"
	exporterOTLP         = "otlp"
	exporterConsole      = "console"
	exporterNone         = "none"
	protocolGRPC         = "grpc"
	protocolHTTPProtobuf = "http/protobuf"
)

// FromEnv returns the tracing the OTEL_* variables (read with getenv) ask for. It is off
// unless OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, and off when OTEL_SDK_DISABLED is true or
// OTEL_TRACES_EXPORTER is none. OTEL_TRACES_EXPORTER chooses otlp (the default) or console
// (JSON lines on console); OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, chooses http/protobuf (the default) or grpc.
func FromEnv(ctx context.Context, getenv func(string) string, console io.Writer) (*Tracing, error) {
	if strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true") {
		return Off(), nil
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv(EnvTracesExporter)))
	if exporter == "" {
		if getenv(EnvEndpoint) == "" && getenv(EnvTracesEndpoint) == "" {
			return Off(), nil
		}
		exporter = exporterOTLP
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch exporter {
	case exporterNone:
		return Off(), nil
	case exporterConsole:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
	case exporterOTLP:
		exp, err = otlpExporter(ctx, getenv)
	default:
		return nil, fmt.Errorf("tracing: %s=%q: not a trace exporter Projector has; use otlp, console or none", EnvTracesExporter, exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: %s exporter: %w", exporter, err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", defaultServiceName), attribute.String("service.version", version.Version)),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource from %s and %s: %w", EnvServiceName, EnvResourceAttributes, err)
	}
	return New(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))), nil
}

// otlpExporter returns the OTLP exporter of the protocol the variables choose; it reads its
// endpoint, headers and timeout from the environment itself.
func otlpExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	name, protocol := EnvTracesProtocol, strings.TrimSpace(getenv(EnvTracesProtocol))
	if protocol == "" {
		name, protocol = EnvProtocol, strings.TrimSpace(getenv(EnvProtocol))
	}
	switch protocol {
	case "", protocolHTTPProtobuf:
		return otlptracehttp.New(ctx)
	case protocolGRPC:
		return otlptracegrpc.New(ctx)
	}
	return nil, fmt.Errorf("%s=%q: not an OTLP protocol Projector has; use %s or %s", name, protocol, protocolHTTPProtobuf, protocolGRPC)
}
