package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/internal/sched"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

func init() { register(newRunCmd) }

func newRunCmd(b Build) *cobra.Command {
	var check bool
	var logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "run the daemon (what masterd.service starts)",
		Long: `Run the masterd daemon for this master. SIGTERM and SIGINT stop it with a
graceful handover of its roles; SIGHUP (systemctl reload) re-reads the
configuration and applies what can change live.

With --check, only check the configuration and this host: every problem is
printed with its key and the fix, errors before warnings, and the exit code
is 2 when there is any error.`,
		Args: noArgs,
	}
	configPath := configFlag(cmd.Flags())
	cmd.Flags().BoolVar(&check, "check", false, "check the configuration and this host, then exit")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "log `format`, text or json (overrides log.format)")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "log `level`: debug, info, warn or error (overrides log.level)")
	cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if check {
			return runCheck(cmd, *configPath)
		}
		return runDaemon(cmd, b, *configPath, logFormat, logLevel)
	}
	return cmd
}

func runDaemon(cmd *cobra.Command, b Build, configPath, logFormat, logLevel string) error {
	stderr := cmd.ErrOrStderr()
	// SIGHUP reloads (below); caught from here on, so one that arrives while
	// the daemon starts waits for the agent instead of killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, err := agent.LoadConfig(configPath)
	if err != nil {
		return configError{err}
	}
	// The flags override the file at start and at every reload.
	override := func(cfg *agent.Config) {
		if logFormat != "" {
			cfg.Log.Format = logFormat
		}
		if logLevel != "" {
			cfg.Log.Level = logLevel
		}
	}
	override(&cfg)
	level := new(slog.LevelVar)
	lv, err := agent.ParseLogLevel(cfg.Log.Level)
	if err != nil {
		return usageError{err.Error()}
	}
	level.Set(lv)
	log, err := agent.NewLeveledLogger(stderr, cfg.Log.Format, level)
	if err != nil {
		return usageError{err.Error()}
	}

	// Before anything else runs: the unit's Nice= only ranks masterd above
	// its neighbours once its autogroup has that priority too (package sched).
	if r, err := sched.MatchAutogroup(); err != nil {
		log.Warn("cpu priority not raised", "err", err)
	} else {
		log.Info("cpu priority", "nice", r.Nice, "autogroup_nice", r.After, "autogroup_changed", r.Skipped == "", "note", r.Skipped)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := prometheus.NewRegistry()
	build := agent.BuildInfo{Version: b.Version, Revision: b.Revision, GoVersion: runtime.Version()}
	node, err := agent.Build(cfg, log, reg)
	if err != nil {
		log.Error("build failed", "err", err)
		return err
	}
	a := agent.New(cfg, agent.Options{
		Logger:     log,
		Registry:   reg,
		Gatherer:   node.Gatherer,
		Components: node.Components,
		Build:      build,
		Liveness:   node.Liveness,
		LoadConfig: func() (agent.Config, error) {
			cfg, err := agent.LoadConfig(configPath)
			if err != nil {
				return cfg, err
			}
			override(&cfg)
			return cfg, nil
		},
		LogLevel: level,
	})
	// SIGHUP (systemctl reload): re-read the file and apply what can change
	// live; roles, units and the etcd member are untouched.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Reload()
			}
		}
	}()
	log.Info("masterd starting", "version", b.Version, "revision", b.Revision, "node", cfg.Name, "pid", os.Getpid())
	if err := a.Run(ctx); err != nil {
		log.Error("masterd failed", "err", err)
		return err
	}
	return nil
}

// runCheck is `run --check`: agent.Preflight's problems on stdout, one per
// line with its key and fix, errors before warnings; exit 2 when there is an
// error, else the ok line, then the warnings, and exit 0.
func runCheck(cmd *cobra.Command, configPath string) error {
	out := cmd.OutOrStdout()
	probs := agent.Preflight(configPath)
	var errs, warns []agent.Problem
	for _, p := range probs {
		if p.Warning {
			warns = append(warns, p)
		} else {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		for _, p := range append(errs, warns...) {
			fmt.Fprintln(out, p)
		}
		fmt.Fprintf(out, "%s: %s, %s\n", configPath, plural(len(errs), "error"), plural(len(warns), "warning"))
		return exitError{ExitUsage}
	}
	cfg, err := agent.LoadConfig(configPath)
	if err != nil { // Preflight found none: a file changed under us
		return configError{err}
	}
	fmt.Fprintf(out, "%s: ok (node %s, %d peers)", configPath, cfg.Name, len(cfg.Peers))
	if len(warns) > 0 {
		fmt.Fprintf(out, ", %s", plural(len(warns), "warning"))
	}
	fmt.Fprintln(out)
	for _, p := range warns {
		fmt.Fprintln(out, p)
	}
	return nil
}

// plural is "1 error", "2 errors".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
