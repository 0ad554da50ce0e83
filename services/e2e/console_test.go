package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// consoleShot, when set, is where TestConsole also writes its screenshot
// (the README's: go test -run TestConsole ./services/e2e -args
// -console-screenshot=$PWD/docs/console.png).
var consoleShot = flag.String("console-screenshot", "", "also write the console's screenshot to this file")

// browser starts headless Chromium (Debian's, which ./build.sh deps test
// installs) with a fresh profile, and returns a context driving a tab and
// the page's console errors and uncaught exceptions so far.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run ./build.sh deps test (apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser and its tab on ctx itself: the
	// steps' own deadlines are contexts derived from it, and a first run on
	// one of those would take the browser down with it.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var mu sync.Mutex
	var errs []string
	chromedp.ListenTarget(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				errs = append(errs, "console.error: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			errs = append(errs, "exception: "+ev.ExceptionDetails.Error())
		}
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// within runs the actions and fails the test if they take longer than d.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Run(c, actions...); err != nil {
		t.Fatalf("%s (within %s): %v", what, d, err)
	}
}

// textIs waits until the element's text is want.
func textIs(sel, want string) chromedp.Action {
	return chromedp.Poll(fmt.Sprintf(`document.querySelector(%q)?.textContent === %q`, sel, want), nil, chromedp.WithPollingInterval(20*time.Millisecond))
}

// textHas waits until the element's text holds want.
func textHas(sel, want string) chromedp.Action {
	return chromedp.Poll(fmt.Sprintf(`(document.querySelector(%q)?.textContent || "").includes(%q)`, sel, want), nil, chromedp.WithPollingInterval(20*time.Millisecond))
}

// TestConsole opens the console on a live stack in headless Chromium:
// creates a wallet, credits it from the page and from outside, and sees the
// balance and the new transaction appear without a reload within a second;
// a refused debit shows its message; the event feed shows the events; the
// shop takes an item and an order; the health shows the writer; on a narrow
// screen nothing overflows. It saves a screenshot in the test's temp dir and
// fails on any console error or uncaught exception in the page.
func TestConsole(t *testing.T) {
	s := startStack(t)
	ctx, consoleErrors := browser(t)
	within(t, ctx, 30*time.Second, "open the console",
		chromedp.Navigate(s.base+"/"),
		chromedp.WaitVisible("#wallet-create", chromedp.ByQuery),
		textIs("#health-status", "ready"),
	)

	var id string
	within(t, ctx, 5*time.Second, "create a wallet",
		chromedp.Click("#wallet-create", chromedp.ByQuery),
		chromedp.WaitVisible("#wallet", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#wallet-id").value.length === 27`, nil),
		chromedp.Value("#wallet-id", &id, chromedp.ByQuery),
	)
	within(t, ctx, time.Second, "a credit from the page shows in the balance and the transactions",
		chromedp.SetValue("#credit-form input[name=amount]", "250", chromedp.ByQuery),
		chromedp.Click("#credit-form button", chromedp.ByQuery),
		textIs("#w-balance", "250"),
		textHas("#transactions", "credited"),
	)
	// A credit made elsewhere reaches the page over its event stream.
	step{"POST", "/wallet/" + id + "/credit", `{"amount": 40}`, nil, 200, ""}.run(t, s)
	within(t, ctx, time.Second, "a credit made elsewhere shows without a reload",
		textIs("#w-balance", "290"),
		chromedp.Poll(`document.querySelectorAll("#transactions tr").length === 2`, nil),
	)
	within(t, ctx, 5*time.Second, "a refused debit shows its message",
		chromedp.SetValue("#debit-form input[name=amount]", "10000", chromedp.ByQuery),
		chromedp.Click("#debit-form button", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#message").classList.contains("error")`, nil),
		textHas("#message", "Insufficient funds"),
		textHas("#transactions", "debit_rejected"),
	)
	within(t, ctx, 5*time.Second, "the event feed shows the wallet's events",
		textHas("#feed", id+" v2 credited"),
		textHas("#feed", "debit_rejected"),
	)
	within(t, ctx, 10*time.Second, "the shop: an item added and ordered",
		chromedp.SetValue("#item-form input[name=name]", "Blue mug", chromedp.ByQuery),
		chromedp.SetValue("#item-form input[name=price]", "120", chromedp.ByQuery),
		chromedp.Click("#item-form button", chromedp.ByQuery),
		textHas("#items", "Blue mug"),
		chromedp.Click("#items button", chromedp.ByQuery),
		textHas("#orders", "completed"),
		textIs("#w-balance", "170"),
	)
	within(t, ctx, 5*time.Second, "the system's health shows the writer",
		textHas("#writers", "yes"),
	)
	var shot []byte
	within(t, ctx, 10*time.Second, "a screenshot", chromedp.FullScreenshot(&shot, 100))
	if err := os.WriteFile(filepath.Join(t.TempDir(), "console.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if *consoleShot != "" {
		if err := os.WriteFile(*consoleShot, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A narrow screen: one column, nothing wider than the screen.
	var overflow bool
	within(t, ctx, 5*time.Second, "a narrow screen",
		chromedp.EmulateViewport(390, 844),
		chromedp.Poll(`window.innerWidth === 390`, nil, chromedp.WithPollingInterval(20*time.Millisecond)),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth`, &overflow),
	)
	if overflow {
		t.Error("the console is wider than a 390px screen")
	}
	if errs := consoleErrors(); len(errs) > 0 {
		t.Fatalf("errors in the page: %v", errs)
	}
}
