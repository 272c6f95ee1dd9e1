/** The studio shell: header navigation, theme switch, the routed screen and the export dialog. */
import { useEffect, useState } from "react";
import { renewSession } from "./api/auth";
import { ExportToNeuronpedia } from "./components/ExportToNeuronpedia";
import { FeatureDashboard } from "./components/FeatureDashboard";
import { ExplanationSearch, ExplanationSearchBox } from "./components/ExplanationSearch";
import { ExportsList } from "./components/ExportsList";
import { JobsList } from "./components/JobsList";
import { SAEDetail } from "./components/SAEDetail";
import { SAEsPanel } from "./components/SAEsPanel";
import { SteeringPage } from "./components/SteeringPage";
import { TextInference } from "./components/TextInference";
import { TrainPage } from "./components/TrainPage";
import { TokenPrompt } from "./components/TokenPrompt";
import { matchRoute, navigate, usePath } from "./lib/router";
import { jobActions, useActiveJobCount } from "./stores/jobsStore";

type Theme = "light" | "dark";

function initialTheme(): Theme {
  const saved = localStorage.getItem("mistudio-theme");
  if (saved === "light" || saved === "dark") return saved;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function NavLink({ to, children, current }: { to: string; children: React.ReactNode; current: boolean }) {
  return (
    <a href={to} aria-current={current ? "page" : undefined} onClick={(e) => { e.preventDefault(); navigate(to); }}>
      {children}
    </a>
  );
}

/** The feature a link to the Steering page pre-selects (`?feature=N`). */
function steerFeatureParam(): number | null {
  const value = new URLSearchParams(window.location.search).get("feature");
  return value !== null && /^\d+$/.test(value) ? Number(value) : null;
}

export function App() {
  const route = matchRoute(usePath());
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const runningCount = useActiveJobCount();

  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("mistudio-theme", theme);
  }, [theme]);
  useEffect(() => {
    void renewSession().finally(() => void jobActions.refresh());
  }, []);

  return (
    <div className="app">
      <a className="skip-link" href="#main">Skip to content</a>
      <TokenPrompt />
      <header className="topbar">
        <a className="brand" href="/" onClick={(e) => { e.preventDefault(); navigate("/"); }}>miStudio</a>
        <nav aria-label="Main">
          <NavLink to="/" current={route.name === "saes" || route.name === "sae" || route.name === "feature" || route.name === "steer" || route.name === "inference"}>SAEs</NavLink>
          <NavLink to="/jobs" current={route.name === "jobs"}>
            Jobs{runningCount > 0 && <span className="count-badge" aria-label={`${runningCount} running`}>{runningCount}</span>}
          </NavLink>
          <NavLink to="/train" current={route.name === "train"}>Train</NavLink>
          <NavLink to="/exports" current={route.name === "exports"}>Exports</NavLink>
          <NavLink to="/search" current={route.name === "search"}>Search</NavLink>
        </nav>
        <ExplanationSearchBox />
        <button type="button" className="theme-toggle" onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
          aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
          {theme === "dark" ? "☀ Light" : "☾ Dark"}
        </button>
      </header>
      <main id="main">
        {route.name === "saes" && <SAEsPanel />}
        {route.name === "sae" && <SAEDetail saeId={route.saeId} key={route.saeId} />}
        {route.name === "feature" && <FeatureDashboard saeId={route.saeId} index={route.index} />}
        {route.name === "steer" && <SteeringPage saeId={route.saeId} feature={steerFeatureParam()} />}
        {route.name === "inference" && <TextInference saeId={route.saeId} key={route.saeId} />}
        {route.name === "jobs" && <JobsList />}
        {route.name === "exports" && <ExportsList />}
        {route.name === "train" && <TrainPage />}
        {route.name === "search" && <ExplanationSearch />}
        {route.name === "notFound" && (
          <section className="panel"><h1>Page not found</h1><NavLink to="/" current={false}>Back to SAEs</NavLink></section>
        )}
      </main>
      <ExportToNeuronpedia />
    </div>
  );
}
