package chatdb

// Regenerate the typed client in ./ent from the schemas in ./schema. The features
// are the ones chatdb's code uses; see the ent documentation for each.
//go:generate go tool ent generate --target ./ent --feature sql/versioned-migration,sql/upsert,sql/lock,sql/modifier,sql/execquery,intercept,privacy,entql ./schema
