export { problemClientErrorHandler, problemErrorHandler, problemFrameworkErrors, notFoundHandler, sendProblem } from './problem.js';
export { parseRange, MAX_MULTIPART_RANGES, type Range } from './range.js';
export { observability, RequestLogsAtDebug, type ObservabilityOptions, type ReadinessCheck } from './observability.js';
export { contentDispositionFor } from './content-disposition.js';
export { boundaryOf, formParts, MultipartError, MultipartParser, parseParameters, type FormPart, type MultipartEvent, type MultipartLimits } from './multipart.js';
