export { canOpenFiles, type BlobStore, type BlobWriter, type ByteRange, type BeginOptions, type FileBlobStore, type ResumableStaging, type StagingState, type StagingWriter } from './blob-store.js';
export { FsBlobStore, READ_CHUNK_BYTES } from './blob-store-fs.js';
export { S3BlobStore, s3Error, type S3Options } from './blob-store-s3.js';
export { acceptedFilename, decodeFormFilename, requireAcceptedFilename, requireAcceptedFolder, safeFilename, titleFromFilename, truncateUtf8 } from './filenames.js';
export { resolveContentType, guessKind, isInlineSafe } from './content-types.js';
export {
  Library,
  newItemId,
  type Actor,
  type StagedUpload,
  type ItemContent,
  type ItemName,
  type FolderInfo,
  type NewItemInput,
  type LibraryStateStore,
  type LibraryOptions,
} from './library.js';
export { createBlobStore } from './create.js';
export { type ItemBody } from './item-body.js';
export { SEND_CHUNK_BYTES, whenDrained, type ByteSink } from './pump-file.js';
export {
  ResumableUploads,
  uploadPlaceKey,
  type ReceiveFrom,
  type UploadPlace,
  UploadLockedError,
  newUploadId,
  type AppendResult,
  type ResumableCheckpoint,
  type ResumableOptions,
  type ResumableRecord,
  type ResumableResult,
  type ResumableUploadStore,
} from './resumable.js';
export { ResumableHashes, type ResumableHash } from './resumable-hash.js';
