/** Short names for the REST API's shapes, all generated from the OpenAPI schema (src/api/schema.d.ts). */
import type { BodyOf, ResponseOf } from "./contract";
import type { components } from "./schema";

type Schemas = components["schemas"];

// The catalog.
export type SAE = Schemas["SAE"];
export type SAESource = SAE["source"];
export type SAEPage = Schemas["SAEPage"];
export type Facets = Schemas["Facets"];
export type SAEConfigView = Schemas["SAEConfigView"];
export type SAEStatistics = Schemas["SAEStatistics"];
export type Training = Schemas["Training"];

// Training SAEs.
export type TrainRequest = Schemas["TrainRequest"];
export type TrainingStarted = Schemas["TrainingStarted"];
export type TrainingCurvesData = Schemas["TrainingCurves"];
export type TrainingStepPoint = TrainingCurvesData["steps"][number];
export type EvalPoint = NonNullable<TrainingCurvesData["evals"]>[number];

// The HuggingFace Hub.
export type RepoListing = Schemas["RepoListing"];
export type HubSAE = Schemas["HubSAE"];
export type GemmaScopeLayer = Schemas["GemmaScopeLayer"];
export type GemmaScopeL0 = Schemas["GemmaScopeL0"];
export type ReleaseSummary = Schemas["ReleaseSummary"];
export type Release = Schemas["Release"];
export type RegistrySAE = Schemas["RegistrySAE"];
export type ReleaseListing = Schemas["ReleaseListing"];

// Jobs.
export type Job = Schemas["Job"];
export type JobStatus = Job["status"];
export type JobStage = Schemas["JobStage"];

// Features and their dashboards.
export type FeatureSummary = Schemas["FeatureSummary"];
export type FeatureDashboardView = Schemas["FeatureDashboardView"];
export type Statistics = Schemas["Statistics"];
export type ActivationExample = Schemas["ActivationExample"];
export type Histogram = Schemas["Histogram"];
export type LogitEntry = Schemas["LogitEntry"];

// Explanations and auto-interp.
export type Explanation = Schemas["Explanation"];
export type ExplanationScore = Schemas["ExplanationScore"];
export type ExplanationHit = Schemas["ExplanationHit"];
export type ExplanationSearchPage = Schemas["ExplanationSearchPage"];
export type ExplainMethod = Schemas["ExplainMethod"];
export type ExplainRequest = BodyOf<"explain">;
export type ExplainEstimate = ResponseOf<"explainEstimate">;
export type ExplainStarted = ResponseOf<"explain">;
export type ScoreRequest = BodyOf<"score">;
export type ScoreStarted = ResponseOf<"score">;

// Live activations and the model server.
export type LiveActivations = Schemas["LiveActivations"];
export type FeatureValue = Schemas["FeatureValue"];
export type FeatureTrace = Schemas["FeatureTrace"];
export type TopFeature = Schemas["TopFeature"];
export type ResidentList = Schemas["ResidentList"];
export type ResidentInfo = Schemas["ResidentInfo"];

// Exports.
export type ExportConfig = Schemas["ExportConfig"];
export type FeatureSelection = Schemas["FeatureSelection"];
export type Export = Schemas["Export"];
export type ExportEstimate = Schemas["ExportEstimate"];
export type ValidationReport = Schemas["ValidationReport"];
export type ValidationIssue = Schemas["ValidationIssue"];

// Publishing to the HuggingFace Hub.
export type PublishRequest = Schemas["PublishRequest"];
export type PublishResult = Schemas["PublishResult"];
export type PublishStatus = Schemas["PublishStatus"];

// Steering.
export type SteerRequest = Schemas["SteerRequest"];
export type SweepRequest = Schemas["SweepRequest"];
export type SteerResult = Schemas["SteerResult"];
export type SweepResult = Schemas["SweepResult"];
export type SteerCompletion = Schemas["Completion"];
export type GeneratedToken = Schemas["GeneratedToken"];
export type SteerComparison = Schemas["Comparison"];
export type SteeringRun = Schemas["SteeringRun"];
export type SteeringRunSummary = Schemas["SteeringRunSummary"];
