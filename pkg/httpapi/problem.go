package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"coffer/pkg/bus"
)

// problemInfo is the one table from error code to HTTP status and title.
var problemInfo = map[bus.Code]struct {
	status int
	title  string
}{
	bus.CodeInvalidAmount:         {http.StatusBadRequest, "Invalid amount"},
	bus.CodeInvalidWalletID:       {http.StatusBadRequest, "Invalid wallet id"},
	bus.CodeInvalidBody:           {http.StatusBadRequest, "Invalid request body"},
	bus.CodeInvalidIdempotencyKey: {http.StatusBadRequest, "Invalid Idempotency-Key"},
	bus.CodeInvalidQuery:          {http.StatusBadRequest, "Invalid query parameter"},
	bus.CodeNotFound:              {http.StatusNotFound, "Not found"},
	bus.CodeMethodNotAllowed:      {http.StatusMethodNotAllowed, "Method not allowed"},
	bus.CodeInsufficientFunds:     {http.StatusConflict, "Insufficient funds"},
	bus.CodeBalanceOverflow:       {http.StatusConflict, "Balance would overflow"},
	bus.CodeBodyTooLarge:          {http.StatusRequestEntityTooLarge, "Request body too large"},
	bus.CodeIdempotencyKeyReused:  {http.StatusUnprocessableEntity, "Idempotency-Key reused"},
	bus.CodeInternal:              {http.StatusInternalServerError, "Internal error"},
	bus.CodeWriterUnavailable:     {http.StatusServiceUnavailable, "Wallet writer unavailable"},
	bus.CodeOverloaded:            {http.StatusServiceUnavailable, "Overloaded"},
	bus.CodeStorageUnavailable:    {http.StatusServiceUnavailable, "Storage unavailable"},
	bus.CodeReadModelUnavailable:  {http.StatusServiceUnavailable, "Read model unavailable"},
	bus.CodeWriterTimeout:         {http.StatusGatewayTimeout, "Wallet writer timeout"},
	bus.CodeUnknownCommand:        {http.StatusBadRequest, "Unknown command"},
	bus.CodeWalletNotFound:        {http.StatusNotFound, "Wallet not found"},
	bus.CodeWalletExists:          {http.StatusConflict, "Wallet exists"},
	bus.CodeWalletFrozen:          {http.StatusConflict, "Wallet frozen"},
	bus.CodeWalletNotFrozen:       {http.StatusConflict, "Wallet not frozen"},
	bus.CodeWalletClosed:          {http.StatusConflict, "Wallet closed"},
	bus.CodeBalanceNotZero:        {http.StatusConflict, "Balance not zero"},
	bus.CodeInvalidOwner:          {http.StatusBadRequest, "Invalid owner"},
	bus.CodeInvalidMetadata:       {http.StatusBadRequest, "Invalid metadata"},
	bus.CodeInvalidOverdraftLimit: {http.StatusBadRequest, "Invalid overdraft limit"},
	bus.CodeInvalidHoldID:         {http.StatusBadRequest, "Invalid hold id"},
	bus.CodeInvalidExpiry:         {http.StatusBadRequest, "Invalid expires_in"},
	bus.CodeHoldNotFound:          {http.StatusNotFound, "Hold not found"},
	bus.CodeHoldExists:            {http.StatusConflict, "Hold exists"},
	bus.CodeHoldNotActive:         {http.StatusConflict, "Hold not active"},
	bus.CodeHoldsActive:           {http.StatusConflict, "Holds active"},
	bus.CodeCaptureExceeds:        {http.StatusConflict, "Capture exceeds the hold"},
	bus.CodeHoldOwned:             {http.StatusConflict, "Hold owned by a transfer"},
	bus.CodeInvalidTransferID:     {http.StatusBadRequest, "Invalid transfer id"},
	bus.CodeTransferNotFound:      {http.StatusNotFound, "Transfer not found"},
	bus.CodeTransferExists:        {http.StatusConflict, "Transfer exists"},
	bus.CodeSameWallet:            {http.StatusBadRequest, "Same wallet"},
	bus.CodeInvalidReference:      {http.StatusBadRequest, "Invalid reference"},
	bus.CodeAlreadyReversed:       {http.StatusConflict, "Already reversed"},
	bus.CodeTransferNotCompleted:  {http.StatusConflict, "Transfer not completed"},
	bus.CodeInvalidTransactionID:  {http.StatusBadRequest, "Invalid transaction id"},
	bus.CodeTransactionNotFound:   {http.StatusNotFound, "Transaction not found"},
	bus.CodeNotReversible:         {http.StatusConflict, "Transaction not reversible"},
	bus.CodeInvalidItemID:         {http.StatusBadRequest, "Invalid item id"},
	bus.CodeItemNotFound:          {http.StatusNotFound, "Item not found"},
	bus.CodeItemExists:            {http.StatusConflict, "Item exists"},
	bus.CodeInvalidName:           {http.StatusBadRequest, "Invalid name"},
	bus.CodeInvalidPrice:          {http.StatusBadRequest, "Invalid price"},
	bus.CodeInvalidQuantity:       {http.StatusBadRequest, "Invalid quantity"},
	bus.CodeOutOfStock:            {http.StatusConflict, "Out of stock"},
	bus.CodeReservationExists:     {http.StatusConflict, "Reservation exists"},
	bus.CodeReservationNotFound:   {http.StatusConflict, "Reservation not found"},
	bus.CodeInvalidOrderID:        {http.StatusBadRequest, "Invalid order id"},
	bus.CodeOrderNotFound:         {http.StatusNotFound, "Order not found"},
	bus.CodeOrderExists:           {http.StatusConflict, "Order exists"},
	bus.CodeInvalidLines:          {http.StatusBadRequest, "Invalid order lines"},
}

// StatusOf returns the HTTP status of an error code; unknown codes are 500.
func StatusOf(c bus.Code) int {
	if p, ok := problemInfo[c]; ok {
		return p.status
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem details body, with Coffer's stable code and,
// for refusals that depend on the wallet, its balance and version. The
// members after Instance come from the refusal's fields (bus.Error.Fields),
// after the standard ones.
type Problem struct {
	Type     string   `json:"type"`
	Title    string   `json:"title"`
	Status   int      `json:"status"`
	Detail   string   `json:"detail"`
	Code     bus.Code `json:"code"`
	Instance string   `json:"instance,omitempty"`
	Balance  *int64   `json:"balance,omitempty"`
	Version  *int64   `json:"version,omitempty"`
}

// writeProblem answers with e as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, e *bus.Error) {
	info, ok := problemInfo[e.Code]
	if !ok {
		info = problemInfo[bus.CodeInternal]
	}
	p := Problem{
		Type:     "/problems/" + string(e.Code),
		Title:    info.title,
		Status:   info.status,
		Detail:   e.Detail,
		Code:     e.Code,
		Instance: r.URL.Path,
	}
	switch info.status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	body, _ := json.Marshal(p)
	body = withFields(body, e.Fields)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(info.status)
	w.Write(append(body, '\n')) //nolint:errcheck // the client left
}

func problem(code bus.Code, detail string) *bus.Error {
	return &bus.Error{Code: code, Detail: detail}
}

// withFields adds the members of fields, a JSON object, at the end of the
// JSON object body. Fields that are not an object are left out: a problem
// is always answered.
func withFields(body []byte, fields json.RawMessage) []byte {
	fields = bytes.TrimSpace(fields)
	if len(fields) < 2 || fields[0] != '{' || fields[len(fields)-1] != '}' || !json.Valid(fields) {
		return body
	}
	inner := bytes.TrimSpace(fields[1 : len(fields)-1])
	if len(inner) == 0 {
		return body
	}
	out := append(body[:len(body)-1:len(body)-1], ',')
	out = append(out, inner...)
	return append(out, '}')
}
