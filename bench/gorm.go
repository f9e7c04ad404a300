package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/chatdb/chatdb/schema/schematype"
)

// gormBatch is the batch size of the GORM stack's CreateInBatches, the same round
// thousand as the ent stack's chunks.
const gormBatch = entChunk

// GORM models of chatdb's tables. GORM's naming strategy maps the fields to the
// migrations' snake_case columns; the tables are chatdb's, so nothing here is
// auto-migrated. DeletedAt is a plain pointer rather than gorm.DeletedAt, which
// would add "deleted_at IS NULL" to every query the other stacks do not run.

type gormUser struct {
	ID          uuid.UUID `gorm:"primaryKey"`
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   *time.Time
	Email       string
	DisplayName string
	Status      string
}

func (gormUser) TableName() string { return "users" }

type gormChat struct {
	ID            uuid.UUID `gorm:"primaryKey"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeletedAt     *time.Time
	Kind          string
	Title         *string
	LastMessageAt time.Time
	ArchivedAt    *time.Time
	CreatedBy     uuid.UUID
}

func (gormChat) TableName() string { return "chats" }

type gormMembership struct {
	ID                uuid.UUID `gorm:"primaryKey"`
	UserID            uuid.UUID
	ChatID            uuid.UUID
	Role              string
	JoinedAt          time.Time
	LastReadAt        *time.Time
	LastReadMessageID *uuid.UUID
	Muted             bool
}

func (gormMembership) TableName() string { return "memberships" }

type gormMessage struct {
	ID        uuid.UUID `gorm:"primaryKey"`
	ChatID    uuid.UUID
	SenderID  *uuid.UUID
	Role      string
	Content   string
	Metadata  *schematype.MessageMetadata
	ReplyToID *uuid.UUID
	CreatedAt time.Time
	EditedAt  *time.Time
	DeletedAt *time.Time
}

func (gormMessage) TableName() string { return "messages" }

// gormInboxRow is what the inbox query's rows scan into: GORM maps result
// columns to fields by name, so the statement's columns are renamed to match.
type gormInboxRow struct {
	ID                  uuid.UUID
	CreatedAt           time.Time
	UpdatedAt           time.Time
	DeletedAt           *time.Time
	Kind                string
	Title               *string
	CreatedBy           uuid.UUID
	LastMessageAt       time.Time
	ArchivedAt          *time.Time
	DirectKey           *string
	MbID                uuid.UUID
	MbRole              string
	MbJoinedAt          time.Time
	MbLastReadAt        *time.Time
	MbLastReadMessageID *uuid.UUID
	MbMuted             bool
	LmID                *uuid.UUID
	LmSenderID          *uuid.UUID
	LmRole              *string
	LmContent           *string
	LmMetadata          *schematype.MessageMetadata
	LmReplyToID         *uuid.UUID
	LmCreatedAt         *time.Time
	LmEditedAt          *time.Time
	LmDeletedAt         *time.Time
	Unread              int64
}

// sqlInboxGorm is the inbox statement with its result columns named for
// gormInboxRow.
var sqlInboxGorm = questionPlaceholders(`SELECT * FROM (` + sqlInbox + `) AS inbox (id, created_at, updated_at,
  deleted_at, kind, title, created_by, last_message_at, archived_at, direct_key,
  mb_id, mb_role, mb_joined_at, mb_last_read_at, mb_last_read_message_id, mb_muted,
  lm_id, lm_sender_id, lm_role, lm_content, lm_metadata, lm_reply_to_id, lm_created_at, lm_edited_at, lm_deleted_at,
  unread)`)

// gormStack is GORM used the obvious way: its PostgreSQL driver (pgx's
// database/sql driver underneath), default configuration (so writes outside an
// explicit transaction get GORM's own), models for the tables, chained queries,
// Raw for the inbox, CreateInBatches for bulk loads. Only its logger is silenced.
type gormStack struct {
	db *gorm.DB
}

// OpenGorm opens the GORM stack.
func OpenGorm(ctx context.Context, url string) (Stack, error) {
	db, err := gorm.Open(postgres.Open(url), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, fmt.Errorf("bench: gorm: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("bench: gorm: %w", err)
	}
	sqlDB.SetMaxOpenConns(MaxOpen)
	sqlDB.SetMaxIdleConns(MaxIdle)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("bench: gorm: %w", err)
	}
	return &gormStack{db: db}, nil
}

func (s *gormStack) Name() string { return "gorm" }

func (s *gormStack) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

func (s *gormStack) GetUser(ctx context.Context, as, id uuid.UUID, got *User) error {
	var u gormUser
	if err := s.db.WithContext(ctx).First(&u, "id = ? AND deleted_at IS NULL AND EXISTS (SELECT 1 FROM users v WHERE v.id = ? AND v.deleted_at IS NULL)", id, as).Error; err != nil {
		return err
	}
	if got != nil {
		*got = User{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, Status: u.Status,
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, DeletedAt: u.DeletedAt}
	}
	return nil
}

func (s *gormStack) AppendMessage(ctx context.Context, m *Message) error {
	m.CreatedAt = Now()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		msg := gormMessage{ID: m.ID, ChatID: m.ChatID, SenderID: m.SenderID, Role: m.Role,
			Content: m.Content, Metadata: m.Metadata, CreatedAt: m.CreatedAt}
		if err := tx.Create(&msg).Error; err != nil {
			return err
		}
		res := tx.Model(&gormChat{ID: m.ChatID}).Update("last_message_at", m.CreatedAt)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return errors.New("bench: gorm: append: chat not found")
		}
		return nil
	})
}

func (s *gormStack) HistoryPage(ctx context.Context, as, chatID uuid.UUID, before Cursor, limit int, got *[]uuid.UUID) error {
	var page []gormMessage
	err := s.db.WithContext(ctx).
		Where("chat_id = ? AND (created_at, id) < (?, ?)", chatID, before.CreatedAt, before.ID).
		Order("created_at DESC, id DESC").
		Limit(limit + 1). // one more, to know whether another page follows
		Find(&page).Error
	if err != nil {
		return err
	}
	page = page[:min(limit, len(page))]
	if got != nil {
		ids := make([]uuid.UUID, len(page))
		for i := range page {
			ids[i] = page[i].ID
		}
		*got = ids
	}
	return nil
}

func (s *gormStack) Inbox(ctx context.Context, userID uuid.UUID, limit int, got *[]InboxRow) error {
	var rows []gormInboxRow
	// The statement names the user twice ($1): GORM's ? placeholders take it
	// twice, in the statement's order.
	if err := s.db.WithContext(ctx).Raw(sqlInboxGorm, userID, userID, limit).Scan(&rows).Error; err != nil {
		return err
	}
	if got != nil {
		out := make([]InboxRow, len(rows))
		for i, r := range rows {
			out[i] = InboxRow{ChatID: r.ID, Unread: int(r.Unread)}
			if r.LmID != nil {
				out[i].LastMessageID = *r.LmID
			}
		}
		*got = out
	}
	return nil
}

func (s *gormStack) MarkRead(ctx context.Context, userID, chatID, messageID uuid.UUID) error {
	db := s.db.WithContext(ctx)
	var m gormMessage
	if err := db.First(&m, "id = ?", messageID).Error; err != nil {
		return err
	}
	if m.ChatID != chatID {
		return errors.New("bench: gorm: mark read: message of another chat")
	}
	res := db.Model(&gormMembership{}).
		Where("user_id = ? AND chat_id = ?", userID, chatID).
		Updates(map[string]any{"last_read_at": m.CreatedAt, "last_read_message_id": m.ID})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return errors.New("bench: gorm: mark read: no membership")
	}
	return nil
}

func (s *gormStack) Import(ctx context.Context, msgs []Message) error {
	rows := make([]gormMessage, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		rows[i] = gormMessage{ID: m.ID, ChatID: m.ChatID, SenderID: m.SenderID, Role: m.Role,
			Content: m.Content, Metadata: m.Metadata, CreatedAt: m.CreatedAt}
	}
	return s.db.WithContext(ctx).CreateInBatches(rows, gormBatch).Error
}
