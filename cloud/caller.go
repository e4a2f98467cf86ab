package cloud

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	client "github.com/sacloud/api-client-go"
	"github.com/sacloud/iaas-api-go"
	"github.com/sacloud/saclient-go"

	"github.com/sakura-ccm/sakura-cloud-controller-manager/internal/config"
)

// innerRateLimit effectively switches off the HTTP library's own rate limit:
// the budget is kept by sakuraapi.Client, above it, where it is shared and counted.
const innerRateLimit = 1000

// UserAgent identifies the controller to the API.
var UserAgent = "sakura-cloud-controller-manager " + iaas.DefaultUserAgent

var callerMu sync.Mutex

// NewCaller builds the process's one iaas-api-go caller from cfg.
//
// It does not use api.NewCallerWithOptions: that path (and the library's
// default client) reads SAKURA_*/SAKURACLOUD_* variables and usacloud
// profiles on its own, so SAKURACLOUD_TRACE or a profile could switch on HTTP
// dumps that include the Authorization header. Here the saclient is told to
// ignore the environment and profiles: only cfg counts. The inner client never
// retries; sakuraapi.Client does bounded retries and counts them.
//
// iaas-api-go keeps the API root and default zone in package globals, so
// building a caller sets them; build one per process.
func NewCaller(cfg *config.Config) (iaas.APICaller, error) {
	callerMu.Lock()
	defer callerMu.Unlock()
	opts := &client.Options{
		AccessToken:          cfg.AccessToken,
		AccessTokenSecret:    cfg.AccessTokenSecret,
		HttpRequestTimeout:   cfg.RequestTimeoutSec,
		HttpRequestRateLimit: innerRateLimit,
		UserAgent:            UserAgent,
		CheckRetryFunc:       func(context.Context, *http.Response, error) (bool, error) { return false, nil },
	}
	root := strings.TrimRight(cfg.APIRootURL, "/")
	var sa saclient.Client
	if err := sa.CompatSettingsFromAPIClientParams(root,
		client.WithDisableEnv(true), client.WithDisableProfile(true), client.WithOptions(opts)); err != nil {
		// saclient's errors describe settings, never their values.
		return nil, fmt.Errorf("building the SAKURA Cloud API client: %w", err)
	}
	if root != "" {
		iaas.SakuraCloudAPIRoot = root
	}
	iaas.APIDefaultZone = cfg.Zone
	return iaas.NewClientFromSaclient(&sa), nil
}
