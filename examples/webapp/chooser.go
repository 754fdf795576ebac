package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessioncap/sessioncap"
)

// The reject chooser: under -overflow reject, a sign-in at a full cap lists
// the account's live sessions and lets the user sign one out in its place,
// password confirmed, in one atomic Login (Meta.Replace).
//
// The list is shown only to whoever just gave the right password. A wrong
// password on the chooser must show it again, so the form carries a
// ticket: an HMAC, under a key drawn at start-up, of the user name and an
// expiry. Without a valid ticket nobody sees the list, so posting a guessed
// user name with a wrong password reveals nothing.

const chooserTicketTTL = 10 * time.Minute

func (a *app) chooserTicket(user string, now time.Time) string {
	exp := strconv.FormatInt(now.Add(chooserTicketTTL).Unix(), 10)
	return exp + "." + a.ticketMAC(user, exp)
}

func (a *app) ticketMAC(user, exp string) string {
	m := hmac.New(sha256.New, a.ticket[:])
	m.Write([]byte("chooser\x00" + user + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *app) validTicket(user, ticket string, now time.Time) bool {
	exp, mac, ok := strings.Cut(ticket, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() > unix {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(a.ticketMAC(user, exp)))
}

// renderChooser shows the live sessions of user to choose one to sign out.
func (a *app) renderChooser(w http.ResponseWriter, r *http.Request, user string, limit int, list []sessioncap.Session, status int, errMsg string) {
	a.render(w, r, tmplLogin, status, pageData{Title: "Too many devices", LoginUser: user, Limit: limit,
		Full: listJSON(list, ""), Ticket: a.chooserTicket(user, time.Now()), Error: errMsg})
}

// pageChooserPost handles the chooser's form: the password again, and the
// session to sign out.
func (a *app) pageChooserPost(w http.ResponseWriter, r *http.Request, user, password, replace string) {
	if !a.validTicket(user, r.PostFormValue("ticket"), time.Now()) {
		a.render(w, r, tmplLogin, http.StatusUnauthorized, pageData{Title: "Sign in", LoginUser: user,
			Error: "That choice expired. Sign in again to choose a device to sign out."})
		return
	}
	limit, _ := strconv.Atoi(r.PostFormValue("limit"))
	res, err := a.login(w, r, user, password, replace)
	var full *sessioncap.LimitError
	switch {
	case errors.Is(err, errLoginFailed):
		list, lerr := a.engine.Sessions(r.Context(), user)
		if lerr != nil {
			a.pageError(w, r, lerr)
			return
		}
		a.renderChooser(w, r, user, limit, list, http.StatusUnauthorized,
			"Wrong password: no device was signed out. Enter the password of "+user+", or cancel.")
	case errors.As(err, &full):
		a.renderChooser(w, r, user, full.Limit, full.Sessions, http.StatusConflict,
			"The account's devices changed meanwhile: choose again.")
	case err != nil:
		a.pageError(w, r, err)
	default:
		http.Redirect(w, r, afterLogin("replaced", res), http.StatusSeeOther)
	}
}
