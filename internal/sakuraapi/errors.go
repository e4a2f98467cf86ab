package sakuraapi

import (
	"errors"
	"net/http"

	"github.com/sacloud/iaas-api-go"
)

// StatusCode returns the HTTP status of the API answer inside err, or 0.
func StatusCode(err error) int {
	var apiErr iaas.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ResponseCode()
	}
	return 0
}

// IsNotFound reports whether err carries a 404 answer. Use it instead of
// iaas.IsNotFoundError, which does not look through the "%w" wrapping that
// every Client call adds.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsStillCreating reports a 409 still_creating answer (a resource read right
// after its creation), looking through wrapping.
func IsStillCreating(err error) bool {
	var apiErr iaas.APIError
	return errors.As(err, &apiErr) && apiErr.ResponseCode() == http.StatusConflict && apiErr.Code() == "still_creating"
}
